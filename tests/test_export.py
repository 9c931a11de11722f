"""`fastformer export --format ctranslate2`: CTranslate2 decodes the exported
model to the same greedy and beam tokens as fastformer (a model trained here
on reversing digit strings, and untrained ones of every norm placement,
activation and tied embeddings), int8 serving, and the bad inputs."""
import os
import sys

import numpy as np
import pytest

import fastformer as ff
from fastformer.checkpoint import save_checkpoint
from fastformer.data import make_batch
from fastformer.decoding import strip_eos
from fastformer.export.ctranslate2 import tokenizer_tokens
from test_cli import assert_one_line_error, run_main
from tiny_training import reverse_task, train_reverse

LINES = ["123", "98765", "5", "12345678", "44", "3141592", "271", "60"]
MAX_LEN = 14


def require_ctranslate2():
    """Skips without ctranslate2, unless FASTFORMER_REQUIRE_CTRANSLATE2=1 (CI), where it fails."""
    if os.environ.get("FASTFORMER_REQUIRE_CTRANSLATE2") == "1":
        import ctranslate2

        return ctranslate2
    return pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def task():
    return reverse_task()


@pytest.fixture(scope="module")
def trained(task):
    """Post-norm with final norms (fastformer's default), 200 steps of reversing digits."""
    return train_reverse(task, 200, MAX_LEN)


def fastformer_tokens(model, vocab, beam, max_len):
    batch = make_batch([vocab.encode(x) for x in LINES], [[] for _ in LINES])
    return strip_eos(model.generate(batch.src, max_len, vocab.bos_id, vocab.eos_id, beam,
                                    batch.src_key_padding_mask), vocab.eos_id)


def ctranslate2_tokens(model_dir, vocab, beam, max_len, **kwargs):
    ctranslate2 = require_ctranslate2()
    translator = ctranslate2.Translator(model_dir, device="cpu", intra_threads=1, **kwargs)
    names = tokenizer_tokens(vocab, "src")
    ids = {name: i for i, name in enumerate(tokenizer_tokens(vocab, "tgt"))}
    results = translator.translate_batch([[names[i] for i in vocab.encode(x)] for x in LINES], beam_size=beam,
                                         max_decoding_length=max_len, length_penalty=1.0)
    return [[ids[t] for t in r.hypotheses[0]] for r in results]


def export(capsys, model, vocab, tmp_path, *extra):
    ck = str(save_checkpoint(tmp_path / "ck", model, vocab=vocab))
    out = str(tmp_path / "ct2")
    code, _, err = run_main(capsys, ["export", "--format", "ctranslate2", "--checkpoint", ck, "--out", out, *extra])
    assert code == 0, err
    return out


def test_trained_model_decodes_the_same(capsys, tmp_path, trained, task):
    require_ctranslate2()
    out = export(capsys, trained, task.vocab, tmp_path)
    for beam in (1, 4):
        ours = fastformer_tokens(trained, task.vocab, beam, MAX_LEN - 1)
        assert ctranslate2_tokens(out, task.vocab, beam, MAX_LEN - 1) == ours
    reversed_right = sum(task.vocab.decode(t) == x[::-1] for t, x in zip(ours, LINES))
    assert reversed_right >= 2  # trained: the equality is on real outputs, not noise


@pytest.mark.parametrize("variant", [dict(norm_first=True), dict(final_norm=False),
                                     dict(norm_first=True, final_norm=False, activation="gelu"),
                                     dict(tie_embeddings=True, activation="gelu", layer_norm_eps=1e-3)])
def test_every_architecture_decodes_the_same(capsys, tmp_path, task, variant):
    require_ctranslate2()
    m = ff.Transformer(len(task.vocab), len(task.vocab), d_model=16, nhead=2, num_encoder_layers=2,
                       num_decoder_layers=2, dim_feedforward=32, dropout=0.0, max_len=10, seed=3, **variant)
    state = m.state_dict()
    rng = np.random.default_rng(0)
    for name in state:  # weights far from their init, so every part of the conversion shows
        if "norm" in name:
            state[name] = (state[name] + 0.3 * rng.standard_normal(state[name].shape)).astype(np.float32)
    # Untrained, eos competes everywhere, and where it does CTranslate2's beam search stops by
    # other rules than ours; barred here, every row decodes 9 tokens: the conversion is what is tested
    state["generator.bias"][task.vocab.eos_id] = -1e4
    m.load_state_dict(state)
    m.eval()
    out = export(capsys, m, task.vocab, tmp_path)
    for beam in (1, 3):
        assert ctranslate2_tokens(out, task.vocab, beam, 9) == fastformer_tokens(m, task.vocab, beam, 9)


def test_int8(capsys, tmp_path, trained, task):
    require_ctranslate2()
    out = export(capsys, trained, task.vocab, tmp_path, "--quantization", "int8")
    got = ctranslate2_tokens(out, task.vocab, 2, MAX_LEN - 1)
    assert len(got) == len(LINES) and all(isinstance(t, int) for row in got for t in row)
    # a float32 export also serves in int8 (quantized when CTranslate2 loads it)
    out32 = export(capsys, trained, task.vocab, tmp_path / "f32")
    assert len(ctranslate2_tokens(out32, task.vocab, 2, MAX_LEN - 1, compute_type="int8")) == len(LINES)


def test_bad_input(capsys, tmp_path, trained, task, monkeypatch):
    bare = str(save_checkpoint(tmp_path / "bare", trained))
    ck = str(save_checkpoint(tmp_path / "ck", trained, vocab=task.vocab))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["export", "--format", "ctranslate2", "--out", str(out), "--checkpoint"]
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # as if not installed
    code, _, err = run_main(capsys, argv + [ck])
    assert_one_line_error(code, err, 'pip install "fastformer[deploy]"')
    monkeypatch.undo()
    require_ctranslate2()
    code, _, err = run_main(capsys, argv + [bare])
    assert_one_line_error(code, err, "bare", "no tokenizer")
    code, _, err = run_main(capsys, argv + [ck])
    assert_one_line_error(code, err, "--out", "not empty", "--force")
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = run_main(capsys, argv + [str(tmp_path / "none")])
    assert_one_line_error(code, err, "no such checkpoint folder")
    code, _, err = run_main(capsys, ["export", "--format", "onnx", "--checkpoint", ck, "--out", str(out)])
    assert_one_line_error(code, err, "--format")
    code, _, err = run_main(capsys, argv + [ck, "--force"])
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "model.bin").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".fastformer-")]  # no temporary folder left
