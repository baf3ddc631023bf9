"""One handle on an SAE, used by every stage instead of its own copy of the forward pass.

Stages need the same few things from an SAE: encode, decode, the reconstruction and its
error term, decoder directions, the L1 weights of its penalty and its raw weights. Written
out by hand in each stage, they drift apart (one stage subtracts b_dec, another forgets). A
``SAEHandle`` holds the weights once, in one canonical form:

    W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
    pre = (x - b_dec) @ W_enc + b_enc,   f = activation(pre),   x_hat = f @ W_dec + b_dec

b_dec is always subtracted from the input. A SAELens SAE with ``apply_b_dec_to_input=False``
(pre = x @ W_enc + b_enc) is folded into that form: relu(x W_enc + b_enc) equals
relu((x - b_dec) W_enc + (b_enc + b_dec W_enc)), so the handle stores
b_enc' = b_enc + b_dec @ W_enc. Its ``cfg`` then says ``apply_b_dec_to_input=True``, so the
handle's weights and cfg describe the same SAE to SAELens too (``to_saelens``). Inputs must be
raw activations: ``normalize_activations`` other than "none" is refused (fold the scaling
first, ``ssae_utils.sae.gsae.fold_norm_scaling``).

Architectures differ only in the activation function (and extra per-feature parameters such
as a JumpReLU threshold), so they are entries of ``ARCHITECTURES``, keyed by SAELens'
architecture name (``sae.cfg.architecture()``): supporting another one is one
``register_architecture`` call in this module.

The handle is also duck-compatible with the SAELens SAE the pipeline used to pass around
(``.cfg``, ``.W_enc``..., ``encode``/``decode``, calling it reconstructs), so stages that only
read those keep working unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from sae_lens.saes.standard_sae import StandardSAE

PARAM_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


@dataclass(frozen=True)
class Architecture:
    """What one SAE architecture adds to the shared affine encoder/decoder."""

    activation: Callable[[torch.Tensor, "SAEHandle"], torch.Tensor]  # (pre-activations, handle) -> features
    sae_class: type | None = None  # SAELens class rebuilt by ``to_saelens`` (takes the cfg)
    extra_params: tuple[str, ...] = ()  # per-feature tensors [d_sae] besides the four (e.g. "threshold")


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, architecture: Architecture) -> None:
    """Make SAEs whose ``cfg.architecture()`` is ``name`` loadable as handles."""
    ARCHITECTURES[name] = architecture


register_architecture("standard", Architecture(activation=lambda pre, _: torch.relu(pre), sae_class=StandardSAE))


def architecture_name(cfg: Any) -> str:
    """SAELens' architecture name of ``cfg`` ("standard" for configs that do not say)."""
    arch = getattr(cfg, "architecture", None)
    return str(arch()) if callable(arch) else "standard"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class SAEHandle:
    """An SAE's weights in canonical form plus its forward pass (see the module docstring)."""

    def __init__(self, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor,
                 cfg: Any, architecture: str = "standard", extras: dict[str, torch.Tensor] | None = None,
                 b_dec_folded: bool = False):
        _require(architecture in ARCHITECTURES,
                 f"SAE architecture {architecture!r} is not registered; registered: {sorted(ARCHITECTURES)} "
                 "(ssae_utils.sae.handle.register_architecture)")
        d_in, d_sae = W_enc.shape
        _require(b_enc.shape == (d_sae,) and W_dec.shape == (d_sae, d_in) and b_dec.shape == (d_in,),
                 f"inconsistent SAE weight shapes: W_enc {tuple(W_enc.shape)}, b_enc {tuple(b_enc.shape)}, "
                 f"W_dec {tuple(W_dec.shape)}, b_dec {tuple(b_dec.shape)}")
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = W_enc, b_enc, W_dec, b_dec
        self.cfg = cfg
        self.architecture = architecture
        self.extras = dict(extras or {})
        # True when the source SAE did not subtract b_dec from its input and b_enc was folded:
        # then the handle's parameters are a reparametrisation of the source's (see
        # ``to_source_grad``), although both compute the same function.
        self.b_dec_folded = b_dec_folded

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sae(cls, sae: Any) -> "SAEHandle":
        """The handle of a SAELens SAE in memory (or anything with its cfg and weights).

        Tensors are detached views of the SAE's, not copies, except the folded b_enc.
        """
        if isinstance(sae, SAEHandle):
            return sae
        cfg = sae.cfg
        arch_name = architecture_name(cfg)
        _require(arch_name in ARCHITECTURES,
                 f"SAE architecture {arch_name!r} is not registered; registered: {sorted(ARCHITECTURES)} "
                 "(ssae_utils.sae.handle.register_architecture)")
        norm = getattr(cfg, "normalize_activations", "none")
        _require(norm == "none",
                 f"SAE normalize_activations={norm!r}: fold the norm scaling into the weights first "
                 "(ssae_utils.sae.gsae.fold_norm_scaling) so the SAE reads raw activations")
        _require(getattr(cfg, "reshape_activations", "none") == "none", "hook_z SAEs are not supported")
        W_enc, b_enc, W_dec, b_dec = (getattr(sae, name).detach() for name in PARAM_NAMES)
        extras = {name: getattr(sae, name).detach() for name in ARCHITECTURES[arch_name].extra_params}
        folded = not bool(getattr(cfg, "apply_b_dec_to_input", True))
        if folded:
            b_enc = b_enc + b_dec @ W_enc
            cfg = copy.deepcopy(cfg)
            cfg.apply_b_dec_to_input = True
        return cls(W_enc, b_enc, W_dec, b_dec, cfg, arch_name, extras, folded)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "SAEHandle":
        """Load a SAELens folder (cfg.json + sae_weights.safetensors)."""
        from sae_lens import SAE

        return cls.from_sae(SAE.load_from_disk(str(path), device=device).eval())

    # ------------------------------------------------------------------ description
    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def hook_name(self) -> str | None:
        return getattr(getattr(self.cfg, "metadata", None), "hook_name", None)

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    def weights(self) -> dict[str, torch.Tensor]:
        """The four weights in canonical form (b_dec is subtracted from the input)."""
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}

    def __repr__(self) -> str:
        return (f"SAEHandle({self.architecture}, d_in={self.d_in}, d_sae={self.d_sae}, hook={self.hook_name!r}, "
                f"{self.dtype}, {self.device}{', b_dec folded' if self.b_dec_folded else ''})")

    # ------------------------------------------------------------------ forward pass
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(x - b_dec) @ W_enc + b_enc, with x cast to the SAE's dtype as SAELens does (and
        moved to its device: a no-op when it is there already)."""
        return (x.to(self.device, self.dtype) - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return ARCHITECTURES[self.architecture].activation(self.pre_activations(x), self)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction, like calling a SAELens SAE."""
        return self.decode(self.encode(x))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_hat, x - x_hat): the error term is what SHIFT-style edits add back."""
        x_hat = self.decode(self.encode(x))
        return x_hat, x - x_hat

    def directions(self, unit: bool = False) -> torch.Tensor:
        """Decoder rows [d_sae, d_in], optionally scaled to unit norm."""
        if not unit:
            return self.W_dec
        return self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.dtype).tiny)

    def l1_weights(self, weighting: str = "decoder_norm") -> torch.Tensor:
        """c_i of the penalty sum_i c_i f_i: ||W_dec[i]|| (SAELens standard) or 1 ("none")."""
        _require(weighting in ("decoder_norm", "none"), f"l1 weighting must be 'decoder_norm' or 'none', not {weighting!r}")
        norms = self.W_dec.norm(dim=1)
        return norms if weighting == "decoder_norm" else torch.ones_like(norms)

    # ------------------------------------------------------------------ derived handles
    def select(self, features: Sequence[int] | slice | torch.Tensor) -> "SAEHandle":
        """The SAE restricted to ``features``: features do not depend on each other, so its
        features are exactly those columns of this SAE's."""
        if not isinstance(features, slice):
            features = torch.as_tensor(features if isinstance(features, torch.Tensor) else list(features), dtype=torch.long)
        # contiguous copies: the same memory layout as a freshly built SAE of that width
        pick = lambda t: t[features].contiguous()  # noqa: E731
        W_enc = self.W_enc[:, features].contiguous()
        cfg = copy.deepcopy(self.cfg)
        cfg.d_sae = int(W_enc.shape[1])
        return SAEHandle(W_enc, pick(self.b_enc), pick(self.W_dec), self.b_dec, cfg, self.architecture,
                         {name: pick(t) for name, t in self.extras.items()}, self.b_dec_folded)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "SAEHandle":
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        cfg = copy.deepcopy(self.cfg)
        if dtype is not None and hasattr(cfg, "dtype"):
            cfg.dtype = str(dtype).removeprefix("torch.")
        if device is not None and hasattr(cfg, "device"):
            cfg.device = str(device)
        return SAEHandle(*(move(t) for t in (self.W_enc, self.b_enc, self.W_dec, self.b_dec)), cfg, self.architecture,
                         {name: move(t) for name, t in self.extras.items()}, self.b_dec_folded)

    @torch.no_grad()
    def to_saelens(self) -> Any:
        """A SAELens SAE with these (canonical) weights, e.g. for saving in SAELens format."""
        sae_class = ARCHITECTURES[self.architecture].sae_class
        _require(sae_class is not None, f"architecture {self.architecture!r} registers no SAELens class to save as")
        sae = sae_class(copy.deepcopy(self.cfg))
        for name, tensor in {**self.weights(), **self.extras}.items():
            getattr(sae, name).copy_(tensor)
        return sae.eval()

    # ------------------------------------------------------------------ the fold's chain rule
    def to_source_grad(self, grad: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gradient w.r.t. the source SAE's own parameters from one w.r.t. the handle's.

        The fold b_enc' = b_enc + b_dec @ W_enc is a change of parameters, so gradients (and
        inner products of gradients, as in TracIn) differ between the two: by the chain rule
        dL/dW_enc = G_Wenc + b_dec (outer) G_benc' and dL/db_dec = G_bdec + W_enc G_benc'.
        ``grad`` must hold all four entries when the handle is folded.
        """
        if not self.b_dec_folded:
            return dict(grad)
        out = dict(grad)
        out["W_enc"] = grad["W_enc"] + torch.outer(self.b_dec, grad["b_enc"])
        out["b_dec"] = grad["b_dec"] + self.W_enc @ grad["b_enc"]
        return out

    def from_source_direction(self, direction: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A direction in the source SAE's parameters as one in the handle's (the Jacobian of
        the fold): db_enc' = db_enc + db_dec @ W_enc + b_dec @ dW_enc. Then
        <grad_handle, from_source_direction(d)> = <to_source_grad(grad_handle), d>."""
        if not self.b_dec_folded:
            return dict(direction)
        out = dict(direction)
        out["b_enc"] = direction["b_enc"] + direction["b_dec"] @ self.W_enc + self.b_dec @ direction["W_enc"]
        return out


def as_handle(sae: Any) -> SAEHandle:
    """``sae`` as a handle: a handle passes through, a SAELens SAE is wrapped."""
    return SAEHandle.from_sae(sae)
