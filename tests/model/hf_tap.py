"""Forward hooks on Hugging Face decoder layers: the reference residual stream."""

from __future__ import annotations

import torch


class HFLayerTap:
    """Captures every HF decoder layer's output (the residual after that block)."""

    def __init__(self, hf_model: torch.nn.Module) -> None:
        self.outputs: dict[int, torch.Tensor] = {}
        self._handles = [
            layer.register_forward_hook(lambda _m, _i, out, index=index: self._store(index, out))
            for index, layer in enumerate(hf_model.model.layers)
        ]

    def _store(self, index: int, out) -> None:
        self.outputs[index] = (out[0] if isinstance(out, tuple) else out).detach()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
