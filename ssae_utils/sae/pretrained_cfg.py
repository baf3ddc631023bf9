"""What a pretrained GSAE's own cfg.json says, readable without loading the SAE.

A SAELens release carries the settings it was trained with in its cfg.json: the context size
(``context_size``), its lambda (``l1_coefficient``), its input normalisation. SAELens drops
most of them when it builds the SAE (SAELens >= 6 keeps ``context_size`` under ``metadata``
and no lambda at all), so we read the file as written.

The profile needs the context size before any model is loaded (``model.context_length=None``
means "the GSAE's", see ``ssae_utils.config.load_profile``), and building a profile must
never touch the network nor import sae_lens. So the cfg.json of a hub release is memoised in
the cache (``$SSAE_CACHE/saes/pretrained_cfg/``) by notebook 00, which downloads it
(``read_raw_cfg(..., download=True)``); a local ``gsae.pretrained_path`` is read directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssae_utils.paths import REPO_ROOT

if TYPE_CHECKING:
    from ssae_utils.sae.config import GSAEConfig

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"


def describe(cfg: "GSAEConfig") -> str:
    """The pretrained GSAE as the user named it, for messages."""
    if cfg.pretrained_path:
        return f"gsae.pretrained_path={cfg.pretrained_path}"
    return f"{cfg.pretrained_release}/{cfg.pretrained_sae_id}"


def _memo_file(release: str, sae_id: str) -> Path:
    # no mkdir here: building a profile must not create folders
    root = Path(os.environ.get("SSAE_CACHE", REPO_ROOT / ".cache"))
    safe = f"{release}__{sae_id}".replace("/", "_")
    return root / "saes" / "pretrained_cfg" / f"{safe}.json"


def local_folder(cfg: "GSAEConfig") -> Path:
    """``gsae.pretrained_path`` as a folder holding a SAELens SAE, or a clear error."""
    folder = Path(str(cfg.pretrained_path)).expanduser()
    missing = [name for name in (CFG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"gsae.pretrained_path={cfg.pretrained_path!r} is not a SAELens SAE folder "
                                f"({', '.join(missing)} missing in {folder.resolve()})")
    return folder


def read_raw_cfg(cfg: "GSAEConfig", download: bool = False) -> dict[str, Any] | None:
    """The pretrained GSAE's cfg.json as written, or None for a hub release whose cfg.json
    is not memoised yet and ``download`` is False. ``download=True`` fetches it from the hub
    (sae_lens resolves the release to its repository) and memoises it."""
    if cfg.pretrained_path:
        return json.loads((local_folder(cfg) / CFG_FILE).read_text())
    memo = _memo_file(cfg.pretrained_release, cfg.pretrained_sae_id)
    if memo.is_file():
        return json.loads(memo.read_text())
    if not download:
        return None
    from huggingface_hub import hf_hub_download
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    from ssae_utils.io import write_json_atomic

    repo_id, folder = get_repo_id_and_folder_name(cfg.pretrained_release, cfg.pretrained_sae_id)
    raw = json.loads(Path(hf_hub_download(repo_id, f"{folder}/{CFG_FILE}")).read_text())
    memo.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(memo, raw)
    return raw


def cfg_value(raw: dict[str, Any] | None, key: str) -> Any:
    """``key`` of a SAELens cfg.json: top level (SAELens < 6) or under ``metadata`` (>= 6)."""
    if not raw:
        return None
    if raw.get(key) is not None:
        return raw[key]
    return (raw.get("metadata") or {}).get(key)


def context_size(raw: dict[str, Any] | None) -> int | None:
    """Tokens per training context of the SAE (BOS included), if its cfg says."""
    value = cfg_value(raw, "context_size")
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def declared_normalization(raw: dict[str, Any] | None) -> str:
    """The input normalisation the SAE was trained with, in SAELens >= 6 names (older
    configs wrote a bool: True meant expected_average_only_in)."""
    value = cfg_value(raw, "normalize_activations")
    if isinstance(value, bool):
        return "expected_average_only_in" if value else "none"
    return "none" if value is None else str(value)
