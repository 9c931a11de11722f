"""`fastformer average`: the float64 mean of several checkpoints' weights, its
refusals, and an averaged checkpoint that translates."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R
from fastformer.averaging import average_checkpoints, mean_state
from fastformer.checkpoint import read_checkpoint, save_checkpoint
from fastformer.data import Vocabulary
from test_cli import assert_one_line_error, run_main

VOCAB = Vocabulary("0123456789")
CONFIG = dict(src_vocab_size=len(VOCAB), tgt_vocab_size=len(VOCAB), d_model=16, nhead=2, num_encoder_layers=1,
              num_decoder_layers=1, dim_feedforward=16, dropout=0.0, max_len=16)


def random_state(model, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(v.shape).astype(v.dtype) for name, v in model.state_dict().items()}


@pytest.fixture
def three(tmp_path):
    """Three checkpoints of one model with known, different weights, and their states."""
    model = ff.Transformer(**CONFIG)
    dirs, states = [], []
    for i in range(3):
        state = random_state(model, seed=i)
        model.load_state_dict(state)
        dirs.append(str(save_checkpoint(tmp_path / f"ck{i}", model, step=100 * (i + 1), vocab=VOCAB,
                                        task={"name": "file"})))
        states.append(state)
    return dirs, states


def test_mean_of_three(three, tmp_path):
    dirs, states = three
    out = str(tmp_path / "avg")
    assert average_checkpoints(dirs, out) == out
    ck = read_checkpoint(out)
    for name, a in states[0].items():
        want = ((a.astype(np.float64) + states[1][name] + states[2][name]) / 3).astype(np.float32)
        np.testing.assert_array_equal(ck.model_state[name], want)
        assert ck.model_state[name].dtype == np.float32
    first = read_checkpoint(dirs[0])
    assert ck.model_config == first.model_config and ck.manifest["vocab"] == first.manifest["vocab"]
    assert ck.manifest["task"] == {"name": "file"} and ck.step == 300 and ck.optimizer_state is None
    # one checkpoint's mean is itself; the same one thrice too
    average_checkpoints([dirs[1]] * 3, tmp_path / "same")
    for name, a in states[1].items():
        np.testing.assert_array_equal(read_checkpoint(tmp_path / "same").model_state[name], a)


def test_mean_state_accumulates_in_float64():
    # 1 + 2**-24 + ... is lost by a float32 running sum; float64 keeps it
    a = {"w": np.array([1.0], np.float32)}
    tiny = {"w": np.array([2.0 ** -24], np.float32)}
    got = mean_state([a, tiny, tiny, tiny])["w"]
    assert got.dtype == np.float32
    assert got[0] == np.float32((1.0 + 3 * 2.0 ** -24) / 4) != np.float32(0.25)


def test_averaged_checkpoint_translates(capsys, three, tmp_path):
    dirs, _ = three
    out = str(tmp_path / "avg")
    code, _, err = run_main(capsys, ["average", *dirs, "--out", out])
    assert code == 0 and "averaged 3 checkpoints" in err
    inputs = tmp_path / "in.txt"
    inputs.write_text("123\n\n45\n")
    code, text, err = run_main(capsys, ["translate", "--checkpoint", out, "--input", str(inputs), "--beam", "2"])
    assert code == 0, err
    assert len(text.split("\n")) == 4


def test_refusals(capsys, three, tmp_path):
    dirs, _ = three
    other = ff.Transformer(**dict(CONFIG, d_model=8))
    save_checkpoint(tmp_path / "small", other, vocab=VOCAB)
    with pytest.raises(ValueError, match="small: its model config differs"):
        average_checkpoints([dirs[0], tmp_path / "small"], tmp_path / "x")
    double = R.Transformer(**CONFIG, dtype=np.float64)
    save_checkpoint(tmp_path / "f64", double, vocab=VOCAB)
    with pytest.raises(ValueError, match="f64: its dtype differs"):
        average_checkpoints([dirs[0], tmp_path / "f64"], tmp_path / "x")
    model = ff.Transformer(**CONFIG)
    save_checkpoint(tmp_path / "vocab", model, vocab=Vocabulary("9876543210"))
    with pytest.raises(ValueError, match="vocab: its tokenizer differs"):
        average_checkpoints([dirs[0], tmp_path / "vocab"], tmp_path / "x")
    with pytest.raises(ValueError, match="is one of the checkpoints"):
        average_checkpoints(dirs, dirs[1])
    with pytest.raises(ValueError, match="one or more"):
        average_checkpoints([], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    before = read_checkpoint(dirs[1]).model_state
    code, _, err = run_main(capsys, ["average", *dirs, "--out", dirs[1]])
    assert_one_line_error(code, err, "--out", "is one of the checkpoints")
    np.testing.assert_array_equal(read_checkpoint(dirs[1]).model_state["generator.bias"], before["generator.bias"])
    code, _, err = run_main(capsys, ["average", dirs[0], str(tmp_path / "missing"), "--out", str(tmp_path / "y")])
    assert_one_line_error(code, err, "missing", "no such checkpoint folder")
    code, _, err = run_main(capsys, ["average", dirs[0], str(tmp_path / "small"), "--out", str(tmp_path / "y")])
    assert_one_line_error(code, err, "model config differs")
    code, _, err = run_main(capsys, ["average", "--out", str(tmp_path / "y")])
    assert code == 2


def test_float64_reference_checkpoints(tmp_path):
    model = R.Transformer(**CONFIG, dtype=np.float64)
    states = []
    for i in range(2):
        states.append(random_state(model, seed=10 + i))
        model.load_state_dict(states[-1])
        save_checkpoint(tmp_path / f"r{i}", model, vocab=VOCAB)
    average_checkpoints([tmp_path / "r0", tmp_path / "r1"], tmp_path / "avg")
    ck = read_checkpoint(tmp_path / "avg")
    assert ck.manifest["model"]["dtype"] == "float64"
    np.testing.assert_array_equal(ck.model_state["generator.bias"],
                                  (states[0]["generator.bias"] + states[1]["generator.bias"]) / 2)
