"""Checkpoint folders: round trip, atomic saves, refusal of damaged files."""
import json
import os

import numpy as np
import pytest
import safetensors.numpy

import fastformer as ff
from fastformer import checkpoint as ckpt_mod
from fastformer.checkpoint import (
    MANIFEST, load_checkpoint, model_from_checkpoint, read_checkpoint, save_checkpoint)
from fastformer.data import Vocabulary
from fastformer.optim import AdamW, NoamSchedule


def tiny_model(seed=0, **overrides):
    config = dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24,
                  dropout=0.1, max_len=8, seed=seed)
    config.update(overrides)
    return ff.reference.Transformer(7, 9, **config)


def trained(seed=0, steps=2):
    """A tiny model and AdamW after `steps` updates (so moments are non-zero)."""
    model = tiny_model(seed)
    opt = AdamW(model, lr=1e-2)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.zero_grad()
        logits = model.forward(rng.integers(0, 7, (2, 5)), rng.integers(0, 9, (2, 4)))
        _, dlogits = ff.reference.cross_entropy(logits, rng.integers(0, 9, (2, 4)))
        model.backward(dlogits)
        opt.step()
    return model, opt


def data_file(directory, kind):
    manifest = json.loads((directory / MANIFEST).read_text())
    return directory / manifest["files"][kind]["name"]


def test_round_trip(tmp_path):
    model, opt = trained()
    vocab = Vocabulary("0123")
    save_checkpoint(tmp_path, model, opt, step=2, schedule=NoamSchedule(16, 10),
                    trainer_state={"step": 2}, vocab=vocab, task={"name": "copy"})
    other = tiny_model()
    other.load_state_dict(tiny_model(seed=9).state_dict())
    other_opt = AdamW(other, lr=0.5)
    ck = load_checkpoint(tmp_path, other, other_opt)
    assert ck.step == 2 and ck.manifest["schedule"] == NoamSchedule(16, 10).config()
    assert Vocabulary.from_dict(ck.manifest["vocab"]) == vocab and ck.manifest["task"] == {"name": "copy"}
    assert other.rng_step == model.rng_step == 2
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[name], value)
    for name, value in opt.state.items():
        np.testing.assert_array_equal(other_opt.state[name], value)
    assert other_opt.steps == 2 and other_opt.lr == opt.lr

    rebuilt, _ = model_from_checkpoint(tmp_path, ff.reference.Transformer)
    assert rebuilt.d_model == 16
    np.testing.assert_array_equal(rebuilt.state_dict()["generator.bias"], model.state_dict()["generator.bias"])


def test_weights_file_is_plain_safetensors_with_spec_names(tmp_path, torch):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt)
    path = data_file(tmp_path, "model")
    import safetensors.torch

    tensors = safetensors.torch.load_file(str(path))
    assert set(tensors) == set(model.state_dict())
    np.testing.assert_array_equal(tensors["encoder.layers.0.self_attn.in_proj_weight"].numpy(),
                                  model.state_dict()["encoder.layers.0.self_attn.in_proj_weight"])


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained(steps=1)
    save_checkpoint(tmp_path, model, opt, step=1)
    before = model.state_dict()
    files_before = sorted(os.listdir(tmp_path))
    model2, opt2 = trained(steps=3)

    for fail_at in (1, 2, 3):  # the weights, the optimizer state, the manifest rename
        calls = {"n": 0}
        real_replace = os.replace

        def crashing_replace(src, dst, calls=calls, fail_at=fail_at):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError("simulated crash")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crashing_replace)
        with pytest.raises(OSError, match="simulated crash"):
            save_checkpoint(tmp_path, model2, opt2, step=3)
        monkeypatch.setattr(os, "replace", real_replace)
        fresh = tiny_model(seed=4)
        with pytest.raises(ValueError, match="seed: saved 0, model 4"):
            load_checkpoint(tmp_path, fresh)
        ck = load_checkpoint(tmp_path, fresh, AdamW(fresh), strict_config=False)
        assert ck.step == 1
        for name, value in before.items():
            np.testing.assert_array_equal(fresh.state_dict()[name], value)
        assert sorted(os.listdir(tmp_path)) == files_before  # temp and orphan files removed

    save_checkpoint(tmp_path, model2, opt2, step=3)
    assert read_checkpoint(tmp_path).step == 3
    assert len(os.listdir(tmp_path)) == 3  # the old step's files are gone


def test_truncated_or_altered_files_are_refused(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, step=2)
    weights = data_file(tmp_path, "model")
    good = weights.read_bytes()

    weights.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_checkpoint(tmp_path)
    altered = bytearray(good)
    altered[-5] ^= 0xFF
    weights.write_bytes(bytes(altered))
    with pytest.raises(ValueError, match="SHA-256 does not match"):
        read_checkpoint(tmp_path)
    weights.unlink()
    with pytest.raises(ValueError, match="missing"):
        read_checkpoint(tmp_path)
    weights.write_bytes(good)
    read_checkpoint(tmp_path)

    manifest_path = tmp_path / MANIFEST
    text = manifest_path.read_text()
    manifest_path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        read_checkpoint(tmp_path)
    manifest = json.loads(text)
    manifest["step"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="checksum"):
        read_checkpoint(tmp_path)
    manifest = json.loads(text)
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 99 is not supported"):
        read_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="no manifest.json"):
        read_checkpoint(tmp_path / "..")
    with pytest.raises(ValueError, match="no such checkpoint folder"):
        read_checkpoint(tmp_path / "nope")


def rewrite_weights(directory, tensors):
    """Replace the weights file by `tensors`, with a manifest that vouches for it
    (as a tool that rewrites checkpoints would): only content checks can catch it."""
    data = safetensors.numpy.save(tensors)
    manifest = json.loads((directory / MANIFEST).read_text())
    entry = ckpt_mod._place_data_file(str(directory), "model", 0, data)
    manifest["files"]["model"] = entry
    manifest["checksum"] = ckpt_mod._checksum(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("generator.bias"), "missing \\['generator.bias'\\]"),
    (lambda t: t.update(extra=np.zeros(2, np.float32)), "unexpected \\['extra'\\]"),
    (lambda t: t.update({"generator.bias": np.zeros(3, np.float32)}), "has shape \\(3,\\)"),
    (lambda t: t["generator.bias"].__setitem__(0, np.nan), "non-finite"),
    (lambda t: t["generator.bias"].__setitem__(0, np.inf), "non-finite"),
])
def test_bad_tensors_are_refused(tmp_path, change, message):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt)
    tensors = model.state_dict()
    change(tensors)
    rewrite_weights(tmp_path, tensors)
    fresh = tiny_model()
    before = fresh.state_dict()
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path, fresh)
    for name, value in before.items():  # nothing was loaded
        np.testing.assert_array_equal(fresh.state_dict()[name], value)


@pytest.mark.parametrize("model_class", [ff.Transformer, ff.reference.Transformer])
def test_weights_are_matched_to_a_saved_config_before_a_model_is_built(tmp_path, model_class):
    """A config altered to thousands of layers (a valid checksum, as a crafted
    file would have) is refused from the weights' names, without building
    the model, and the error names only the first missing tensors."""
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["model"]["config"]["num_decoder_layers"] = 5000
    manifest["checksum"] = ckpt_mod._checksum(manifest)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    built = []

    class Spy(model_class):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    with pytest.raises(ValueError, match=r"missing \['decoder\.layers\.1\.self_attn\.in_proj_weight', .*\] and "
                                         r"89,972 more, unexpected \[\]"):
        model_from_checkpoint(tmp_path, Spy)
    assert not built


def test_config_mismatch_is_refused(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt)
    with pytest.raises(ValueError, match="d_model: saved 16, model 32"):
        load_checkpoint(tmp_path, tiny_model(d_model=32))
    with pytest.raises(ValueError, match="dropout: saved 0.1, model 0.0"):
        load_checkpoint(tmp_path, tiny_model(dropout=0.0))
    with pytest.raises(ValueError, match="float32 model, the model is float64"):
        load_checkpoint(tmp_path, tiny_model(dtype=np.float64))
    save_checkpoint(tmp_path, model, None)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path, tiny_model(), AdamW(tiny_model()))
