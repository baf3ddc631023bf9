"""Typed configuration for the three profiles of one pipeline: smoke, embedded and paper.

Every knob lives in exactly one dataclass field. A profile is built by ``load_profile(name,
overrides)``; overrides use dotted names (``gsae.d_sae=2048``) and come from run_all's
``--set`` option or from a notebook's papermill ``overrides`` parameter. Unknown profiles and
unknown knobs raise errors that list the valid choices.

Subdomains are values too (``ssae_utils.domains``): ``domains.<name>=<JSON object>`` adds a
domain or changes some of an existing one's fields, ``domains.<name>=null`` drops one,
``domains.<name>.<field>=<value>`` sets one field, and a value ``@file.json`` is read from
that file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
from pathlib import Path
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal


from ssae_utils.activations import ActivationConfig
from ssae_utils.analysis.config import TailConfig
from ssae_utils.autointerp.config import AutointerpConfig
from ssae_utils.paths import DEFAULT_PROFILE as _DEFAULT_PROFILE
from ssae_utils.bios.config import BiosStudyConfig
from ssae_utils.data.corpora import DataConfig
from ssae_utils.domains import Domain, check_domains, domain_from_value, preset_domains
from ssae_utils.io import stable_hash
from ssae_utils.model.config import ModelConfig
from ssae_utils.retrieval.config import RetrievalConfig
from ssae_utils.sae.config import GSAEConfig, SSAESweepConfig


@dataclass
class ProfileConfig:
    """One profile of the pipeline: every stage reads its knobs from here."""

    name: str
    data: DataConfig
    model: ModelConfig
    domains: dict[str, Domain] = field(default_factory=dict)
    activations: ActivationConfig = field(default_factory=ActivationConfig)
    gsae: GSAEConfig = field(default_factory=GSAEConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    finetune: SSAESweepConfig = field(default_factory=SSAESweepConfig)
    tail: TailConfig = field(default_factory=TailConfig)
    autointerp: AutointerpConfig = field(default_factory=AutointerpConfig)
    bios: BiosStudyConfig = field(default_factory=BiosStudyConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        self.domains = check_domains(self.domains)
        if self.model.context_length is None and self.gsae.source != "pretrained":
            raise ValueError("model.context_length=null means the pretrained GSAE's context size, but "
                             f"gsae.source={self.gsae.source!r}: set model.context_length")
        if not self.domains:
            raise ValueError("the profile has no subdomain: add one with --set 'domains.<name>={...}' "
                             "(see ssae_utils/domains.py)")
        for section in (self.tail, self.autointerp):
            knob = f"{'tail' if section is self.tail else 'autointerp'}.domain"
            if section.domain is not None and section.domain not in self.domains:
                raise ValueError(f"{knob}={section.domain!r} is not one of the profile's domains {list(self.domains)}")
        used = set(self.data.source_names()) | {s for d in self.domains.values() for s in d.sources()}
        unused = sorted(set(self.data.source_options) - used)
        if unused:
            raise ValueError(f"data.source_options names {unused}, which no role or domain uses; used sources: {sorted(used)}")

    def domain(self, name: str | None = None) -> Domain:
        """The domain ``name`` (None: the first one), or an error listing the domains."""
        if name is None:
            return next(iter(self.domains.values()))
        if name not in self.domains:
            raise KeyError(f"unknown domain {name!r}; this profile's domains: {list(self.domains)}")
        return self.domains[name]

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def hash(self) -> str:
        return stable_hash(self.to_dict())


# Every section has one preset per profile, as a classmethod named after the profile
# (``DataConfig.embedded()``...); the budgets and calibrations behind each are documented there.
SECTIONS: dict[str, Any] = {
    "data": DataConfig, "model": ModelConfig, "activations": ActivationConfig, "gsae": GSAEConfig,
    "retrieval": RetrievalConfig, "finetune": SSAESweepConfig, "tail": TailConfig,
    "autointerp": AutointerpConfig, "bios": BiosStudyConfig,
}


def build_profile(name: str) -> ProfileConfig:
    """Profile ``name`` from each section's preset of that name and the preset domains."""
    return ProfileConfig(name=name, domains=preset_domains(name),
                         **{section: getattr(cls, name)() for section, cls in SECTIONS.items()})


PROFILES: dict[str, Callable[[], ProfileConfig]] = {name: functools.partial(build_profile, name)
                                                    for name in ("smoke", "embedded", "paper")}
DEFAULT_PROFILE = _DEFAULT_PROFILE


def load_profile(name: str = DEFAULT_PROFILE, overrides: dict[str, Any] | None = None) -> ProfileConfig:
    """Build a profile and apply dotted overrides such as ``{"gsae.d_sae": 2048}``."""
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}. Valid profiles: {', '.join(PROFILES)}.")
    cfg = apply_overrides(PROFILES[name](), overrides or {})
    return resolve_context_length(cfg)


def resolve_context_length(cfg: ProfileConfig, download: bool = False) -> ProfileConfig:
    """``cfg`` with model.context_length=None replaced by the pretrained GSAE's context size
    (``context_size`` of its cfg.json: 1024 for gemma-2b-res-jb). An explicit
    model.context_length is the user's choice and is kept (stage 00 refuses one longer than
    the GSAE's contexts). A hub release's cfg.json is read from the cache, where notebook 00
    puts it (``download=True``): a profile is never built from the network. Left None when
    it is not there yet; ``load_model`` then says so."""
    if cfg.model.context_length is not None:
        return cfg
    from ssae_utils.sae.pretrained_cfg import context_size, describe, read_raw_cfg

    raw = read_raw_cfg(cfg.gsae, download=download)
    if raw is None:
        return cfg
    size = context_size(raw)
    if size is None:
        raise ValueError(f"the pretrained GSAE ({describe(cfg.gsae)}) does not say its context size (no "
                         "context_size in its cfg.json): set model.context_length")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, context_length=size))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.field=value`` from the command line (value parsed as JSON when it can
    be; ``@path`` reads the JSON value from that file)."""
    if "=" not in text:
        raise ValueError(f"Override {text!r} must look like section.field=value, e.g. gsae.d_sae=2048")
    key, raw = text.split("=", 1)
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        if not path.is_file():
            raise ValueError(f"{key.strip()}: {raw!r} names no file ({path.resolve()} does not exist)")
        try:
            return key.strip(), json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{key.strip()}: {path} is not valid JSON ({err})") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


SOURCE_FIELDS = ("source", "seed_source", "val_source", "test_source", "ood_source")


def absolute_source_paths(overrides: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """``overrides`` with every relative file or folder a domain names (and the matching
    ``data.source_options`` keys) made absolute against ``base`` (default: the current
    folder). run_all calls it before handing overrides to the kernels, which run in
    notebooks/, where a relative path would point elsewhere."""
    from ssae_utils.data.sources.files import HUB_PREFIX

    base = Path.cwd() if base is None else Path(base)

    def fix(value: Any) -> Any:
        if not isinstance(value, str) or value.startswith(HUB_PREFIX) or Path(value).is_absolute():
            return value
        candidate = (base / value).expanduser()
        return str(candidate.resolve()) if candidate.exists() else value

    out = {}
    for key, value in overrides.items():
        parts = key.split(".")
        if parts[0] == "domains" and len(parts) == 2 and isinstance(value, dict):
            value = {k: fix(v) if k in SOURCE_FIELDS else v for k, v in value.items()}
        elif parts[0] == "domains" and len(parts) == 3 and parts[2] in SOURCE_FIELDS:
            value = fix(value)
        elif key == "data.source_options" and isinstance(value, dict):
            value = {fix(k): v for k, v in value.items()}
        elif key == "gsae.pretrained_path":
            value = fix(value)
        out[key] = value
    return out


def apply_override(cfg: Any, dotted: str, value: Any, _outer: str = "") -> Any:
    """Return a copy of ``cfg`` with the (nested) field ``dotted`` set to ``value``.

    The new dataclass is rebuilt so its ``__post_init__`` validation runs again.
    """
    return apply_overrides(cfg, {dotted: value}, _outer)


def apply_overrides(cfg: Any, overrides: dict[str, Any], _outer: str = "") -> Any:
    """Return a copy of ``cfg`` with every dotted override applied.

    The knobs of one section are set together and the section validated once, so a check
    across knobs holds whatever order they come in (``gsae.source=pretrained`` needs
    ``gsae.pretrained_path`` or a release: set one at a time, the first would be refused).
    Domain overrides apply in order (a later one may edit a domain an earlier one added).
    """
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    domains: dict[str, Domain] | None = None
    valid = {f.name for f in dataclasses.fields(cfg)}
    for dotted, value in overrides.items():
        head, _, rest = dotted.partition(".")
        full = f"{_outer}{dotted}"  # the knob as the user wrote it, for messages
        if isinstance(cfg, ProfileConfig) and head == "domains":
            domains = _override_domains(cfg.domains if domains is None else domains, rest, value)
            continue
        if head not in valid:
            raise KeyError(
                f"Unknown knob {full!r} in {type(cfg).__name__}. Valid knobs: {', '.join(sorted(valid))}."
            )
        current = getattr(cfg, head)
        if rest:
            if not dataclasses.is_dataclass(current):
                raise KeyError(f"{head!r} is a value, not a section; drop '.{rest}'.")
            nested.setdefault(head, {})[rest] = value
        else:
            if dataclasses.is_dataclass(current):
                raise KeyError(f"{head!r} is a section; set one of its fields, e.g. {head}.<field>=...")
            changes[head] = _coerce(value, _field_type(type(cfg), head), full)
    for head, sub in nested.items():
        changes[head] = apply_overrides(getattr(cfg, head), sub, f"{_outer}{head}.")
    if domains is not None:
        changes["domains"] = domains
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _override_domains(domains: dict[str, Domain], dotted: str, value: Any) -> dict[str, Domain]:
    """``domains.<name>`` = object (add, or merge onto an existing domain) / null (drop);
    ``domains.<name>.<field>`` = value."""
    name, _, rest = dotted.partition(".")
    if not name:
        raise KeyError("set one domain: domains.<name>={...}, domains.<name>=null or domains.<name>.<field>=...")
    out = dict(domains)
    if rest:
        if name not in out:
            raise KeyError(f"unknown domain {name!r} in 'domains.{dotted}'; domains: {list(out)} "
                           f"(add one with domains.{name}={{...}})")
        out[name] = apply_override(out[name], rest, value, f"domains.{name}.")
    elif value is None:
        if name not in out:
            raise KeyError(f"cannot drop domain {name!r}: domains are {list(out)}")
        del out[name]
    else:
        out[name] = domain_from_value(name, value, out.get(name))
    return out


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[name]


def _coerce(value: Any, annotation: Any, dotted: str) -> Any:
    """Convert ``value`` to the annotated type, or raise a clear error."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, dotted)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"{dotted}: cannot use {value!r} ({'; '.join(errors)})")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{dotted} must be one of {list(args)}, not {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ValueError(f"{dotted} expects true/false, not {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{dotted} expects an integer, not {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{dotted} expects an integer, not {value!r}") from None
    if annotation is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{dotted} expects a number, not {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{dotted} must be a finite number, not {value!r}")
        return number
    if annotation is str:
        return str(value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{dotted} expects a list, not {value!r}")
        return origin(value)
    return value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # a knob marked omit_default is left out at its default (see data.config.omit_defaults)
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


