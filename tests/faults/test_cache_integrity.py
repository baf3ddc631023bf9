"""Fault injection: damaged cache entries are caught when read, recomputed where they can be,
and otherwise refused with the path (never a silently wrong number)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from ssae_utils.integrity import CorruptCacheError
from ssae_utils.sae.gsae import load_sae, save_sae
from tests.test_activations import DOCS, make_store


def _damage(path, offset=200, n=4096, seed=0):
    """Overwrite bytes in place (size unchanged), as a bad disk or a stray write would."""
    data = bytearray(path.read_bytes())
    n = min(n, len(data) - offset)
    data[offset:offset + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_a_damaged_activation_shard_is_recomputed_not_read(tmp_path, caplog):
    store = make_store(tmp_path)
    clean = store.load(DOCS).acts.clone()
    shards = sorted((tmp_path / "acts").rglob("*.acts.npy"))
    assert shards
    for shard in shards:
        _damage(shard)
    caplog.set_level(logging.WARNING)
    again = make_store(tmp_path).load(DOCS).acts           # a new run (new process state)
    assert torch.equal(again, clean)
    assert "corrupt activation shard" in caplog.text and "checksum" in caplog.text


def test_a_truncated_shard_is_recomputed(tmp_path):
    store = make_store(tmp_path)
    clean = store.load(DOCS).acts.clone()
    shard = sorted((tmp_path / "acts").rglob("*.acts.npy"))[0]
    shard.write_bytes(shard.read_bytes()[:300])
    assert torch.equal(make_store(tmp_path).load(DOCS).acts, clean)


def _saved_sae(folder):
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=16, apply_b_dec_to_input=True, dtype="float32", device="cpu"))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    save_sae(sae, folder, {"note": "test"})
    return sae


def test_sae_weights_with_finite_noise_are_refused_with_the_path(tmp_path):
    folder = tmp_path / "sae"
    _saved_sae(folder)
    assert load_sae(folder).d_sae == 16
    weights = folder / "sae_weights.safetensors"
    _damage(weights, offset=len(weights.read_bytes()) - 64, n=32)   # inside the float data: finite noise
    with pytest.raises(CorruptCacheError, match=f"{weights}.*checksum"):
        load_sae(folder)


def test_a_truncated_sae_is_refused_with_the_path_not_a_bare_safetensors_error(tmp_path):
    folder = tmp_path / "sae"
    _saved_sae(folder)
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CorruptCacheError, match=str(weights)):
        load_sae(folder)
    (folder / "checksums.json").unlink()                  # an old entry without digests: still caught on load
    with pytest.raises(CorruptCacheError, match=f"the SAE in {folder} cannot be loaded"):
        load_sae(folder)


def test_non_finite_weights_are_refused(tmp_path):
    folder = tmp_path / "sae"
    sae = _saved_sae(folder)
    with torch.no_grad():
        sae.W_dec[0, 0] = float("nan")
    save_sae(sae, folder, {})                              # written so, with matching digests
    with pytest.raises(CorruptCacheError, match="non-finite W_dec"):
        load_sae(folder)


def test_a_damaged_ssae_in_the_sweep_cache_is_trained_again(tmp_cache):
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import train_grid
    from ssae_utils.sae.finetune import FinetuneConfig
    from ssae_utils.sae.handle import SAEHandle

    gsae = SAEHandle.from_sae(_saved_sae(tmp_cache / "gsae"))
    store = make_store(tmp_cache)
    store.model.d_model = 8
    docs = [Document(f"d{i}", t, "toy") for i, t in enumerate(DOCS)]
    fcfg = FinetuneConfig(l1_coefficients=(0.5,), steps=4, batch_size=16, lr=1e-3, lr_decay_steps=2,
                          shuffle_buffer_batches=None, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the retrained weights must equal the first ones bit for bit
    try:
        first = train_grid(gsae, "gsae", store, docs, fcfg, 1.0, None, "h", "m", "test grid")
        folder = tmp_cache / "cache" / first.folders[4][0]
        _damage(folder / "sae_weights.safetensors", offset=len((folder / "sae_weights.safetensors").read_bytes()) - 64, n=32)
        again = train_grid(gsae, "gsae", store, docs, fcfg, 1.0, None, "h", "m", "test grid")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(again.saes[4][0].W_dec, first.saes[4][0].W_dec)   # retrained, same weights
    assert load_sae(folder).d_sae == 16                                   # and the cache entry is whole again


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00garbage", b'{"schema_version": 1, "profile":'])
def test_a_garbled_results_file_names_itself_and_the_fix(tmp_cache, garbage):
    from ssae_utils.config import load_profile
    from ssae_utils.pipeline.foundation import load_saved_gsae
    from ssae_utils.paths import results_dir

    path = results_dir("smoke") / "00_setup.json"
    path.write_bytes(garbage)
    with pytest.raises(ValueError, match=f"{path} is not valid JSON.*rerun"):
        load_saved_gsae(load_profile("smoke"))


# --- corpora --------------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["jsonl", "arrow"])
def test_a_damaged_corpora_split_is_rebuilt(tmp_cache, caplog, storage):
    from ssae_utils.data import DataConfig, build_corpora

    cfg = DataConfig.smoke(storage=storage)
    first = build_corpora(cfg)
    ids = {n: [d.doc_id for d in docs] for n, docs in first.items()}
    path = first.path / f"physics_seed.{storage}"
    clean = path.read_bytes()
    # a changed word that still parses: only the digest can tell
    raw = clean.replace(b"the", b"teh", 1) if b"the" in clean else clean[::-1]
    assert raw != clean and len(raw) == len(clean)
    path.write_bytes(raw)
    caplog.set_level(logging.WARNING)
    again = build_corpora(cfg)
    assert {n: [d.doc_id for d in docs] for n, docs in again.items()} == ids
    assert path.read_bytes() == clean
    assert f"damaged corpora cache entry: {path} does not match its checksum" in caplog.text


def test_a_corpora_entry_without_digests_is_accepted_and_given_them(tmp_cache):
    import json

    from ssae_utils.data import DataConfig, build_corpora

    first = build_corpora(DataConfig.smoke())
    manifest = first.path / "manifest.json"
    data = json.loads(manifest.read_text())
    digests = data.pop("xxh3_128")
    assert set(digests) == {f"{n}.jsonl" for n in first.splits}
    manifest.write_text(json.dumps(data))                 # as written before digests existed
    build_corpora(DataConfig.smoke())
    assert json.loads(manifest.read_text())["xxh3_128"] == digests


def test_a_damaged_corpora_entry_that_cannot_be_rebuilt_names_the_file_and_the_command(tmp_cache, monkeypatch):
    from ssae_utils.data import DataConfig, build_corpora
    from ssae_utils.data import corpora as corpora_module

    first = build_corpora(DataConfig.smoke())
    path = first.path / "general_pool.jsonl"
    path.write_bytes(path.read_bytes()[:-50])                # truncated

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(corpora_module, "assemble_splits", offline)
    with pytest.raises(CorruptCacheError, match=f"{path} does not match its checksum.*ConnectionError.*"
                                                f"Delete {first.path} and run `python run_all.py --profile smoke --from 00`"):
        build_corpora(DataConfig.smoke())
