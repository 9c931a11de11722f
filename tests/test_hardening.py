"""Regression tests of the hardening issue: every bad input found by the
sanitizer and fuzzing campaign gives a clear error naming the argument (or a
correct result), and a failed call changes nothing."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as R
from fastformer.checkpoint import MANIFEST, _checksum, load_checkpoint, model_from_checkpoint, save_checkpoint
from fastformer.data import SyntheticTask
from fastformer.layout import parameter_count, parameter_specs
from fastformer.reference.optim import clip_grad_norm as reference_clip_grad_norm
from fastformer.trainer import NonFiniteLossError, Trainer

SMALL = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8, max_len=8)


def small(cls=ff.Transformer, **overrides):
    return cls(5, 6, **{**SMALL, **overrides})


# ----- 1. sizes are checked before anything is listed or allocated ---------------------

@pytest.mark.parametrize("overrides", [dict(num_encoder_layers=10 ** 9), dict(num_decoder_layers=10 ** 12),
                                       dict(d_model=2 ** 40, nhead=1), dict(dim_feedforward=10 ** 15)])
@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_a_model_too_large_for_memory_fails_at_once(cls, overrides):
    start = time.perf_counter()
    with pytest.raises(MemoryError, match="parameters"):
        small(cls, **overrides)
    assert time.perf_counter() - start < 5  # the hang was unbounded; a generous bound


@pytest.mark.parametrize("final_norm", [True, False])
@pytest.mark.parametrize("tie", [True, False])
def test_parameter_count_matches_the_layout(final_norm, tie):
    config = dict(src_vocab_size=7, tgt_vocab_size=9, d_model=12, dim_feedforward=20, num_encoder_layers=2,
                  num_decoder_layers=3, final_norm=final_norm, tie_embeddings=tie)
    specs = parameter_specs(12, 20, 2, 3, 7, 9, final_norm, tie)
    assert parameter_count(config) == (sum(int(np.prod(s)) for _, s, _ in specs), len(specs))


@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_more_layers_than_dropout_sites_hold_fail_at_once(cls):
    """2**18 tiny layers fit in memory, but listing their 4.7 million tensors
    took 87 s (minutes under ASan: a fuzz finding) before dropout's 16-bit
    layer index refused them."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match="num_decoder_layers must be at most 65536"):
        small(cls, num_decoder_layers=2 ** 18)
    assert time.perf_counter() - start < 5
    small(cls, num_encoder_layers=0, num_decoder_layers=1)


def test_a_checkpoint_of_a_huge_model_is_refused_at_once(tmp_path):
    save_checkpoint(tmp_path, small())
    rewrite_manifest(tmp_path, lambda m: m["model"]["config"].update(num_encoder_layers=10 ** 9))
    with pytest.raises(ValueError, match="manifest.json.*model.config"):
        model_from_checkpoint(tmp_path, ff.Transformer)


# ----- 2. and 3. checkpoint manifests: a schema, then check-before-assign ---------------

def rewrite_manifest(directory, change):
    """Edit a saved manifest and give it a valid checksum, as a crafted file would have."""
    path = os.path.join(directory, MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    change(manifest)
    manifest["checksum"] = _checksum(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def _del(*keys):
    def change(m):
        for key in keys[:-1]:
            m = m[key]
        del m[keys[-1]]
    return change


def _set(value, *keys):
    def change(m):
        for key in keys[:-1]:
            m = m[key]
        m[keys[-1]] = value
    return change


BAD_MANIFESTS = [
    (_del("model"), "'model' is missing"),
    (_set("weights", "model"), "'model' must be an object"),
    (_del("model", "config"), "'model.config' is missing"),
    (_set([], "model", "config"), "'model.config' must be an object"),
    (_del("model", "dtype"), "'model.dtype' is missing"),
    (_set("float16", "model", "dtype"), "'model.dtype' must be one of"),
    (_del("model", "rng_step"), "'model.rng_step' is missing"),
    (_set(float("inf"), "model", "rng_step"), "'model.rng_step' must be an integer"),
    (_set(-1, "model", "rng_step"), "'model.rng_step' must be an integer"),
    (_set(2 ** 63, "step"), "'step' must be an integer"),
    (_set("3", "model", "config", "seed"), "model.config.*seed"),
    (_set(None, "model", "config", "dropout"), "model.config.*dropout"),
    (_del("model", "config", "d_model"), "'model.config.d_model' is missing"),
    (_set("nope", "files"), "'files' must be an object"),
    (_del("files", "optimizer"), "'files.optimizer' is missing"),
    (_set(12, "files", "model", "name"), "'files.model.name' must be a string"),
    (_set("xyz", "files", "model", "sha256"), "'files.model.sha256'"),
    (_set(float("nan"), "optimizer", "hyperparameters", "lr"), "optimizer.hyperparameters.lr"),
    (_set(2 ** 63 - 1, "optimizer", "steps"), "'optimizer.steps' must be an integer"),
    (_set("x", "vocab"), "'vocab' must be an object or null"),
]


@pytest.mark.parametrize("change, message", BAD_MANIFESTS)
def test_a_bad_manifest_names_the_file_and_field(tmp_path, change, message):
    model = small()
    save_checkpoint(tmp_path, model, ff.optim.AdamW(model))
    rewrite_manifest(tmp_path, change)
    with pytest.raises(ValueError, match=f"manifest.json: .*{message}"):
        model_from_checkpoint(tmp_path, ff.Transformer)
    other = small()
    other.load_state_dict(small(seed=3).state_dict())
    before = other.state_dict()
    with pytest.raises(ValueError, match="manifest.json"):
        load_checkpoint(tmp_path, other, ff.optim.AdamW(other))
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("change", [_del("model", "rng_step"), _set("Infinity", "model", "config", "seed")])
def test_the_cli_prints_one_line_and_exits_2_for_a_bad_manifest(tmp_path, change):
    trained = tmp_path / "ck"
    run_cli("train", "--steps", "1", "--no-progress", "--checkpoint", str(trained), cwd=tmp_path)
    rewrite_manifest(trained, change)
    proc = run_cli("generate", "--checkpoint", str(trained), cwd=tmp_path, input="12\n", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "manifest.json" in lines[0] and "Traceback" not in proc.stderr


def run_cli(*args, cwd, input=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "fastformer", *args], cwd=cwd, input=input, text=True,
                          capture_output=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_a_failed_load_changes_neither_model_nor_optimizer(tmp_path):
    """The optimizer state is checked with the weights, before either is assigned."""
    model = small()
    opt = ff.optim.AdamW(model)
    save_checkpoint(tmp_path, model, opt)
    # A state that passes the file checks but not the optimizer's: betas out of range.
    rewrite_manifest(tmp_path, _set([0.9, 1.5], "optimizer", "hyperparameters", "betas"))
    other = small()
    other.load_state_dict(small(seed=5).state_dict())  # other weights, the same config
    other_opt = ff.optim.AdamW(other, lr=0.25)
    before = other.state_dict()
    with pytest.raises(ValueError, match="betas"):
        load_checkpoint(tmp_path, other, other_opt)
    assert other_opt.lr == 0.25 and other_opt.betas == (0.9, 0.999)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


# ----- 4. values beyond float32 -----------------------------------------------------------

def test_load_state_dict_refuses_values_beyond_the_model_dtype():
    model = small()
    state = model.state_dict()
    before = model.state_dict()
    state["generator.bias"] = np.full(6, 1e39)
    with pytest.raises(ValueError, match="'generator.bias'.*non-finite values in float32"):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    wide = small(R.Transformer, dtype=np.float64)
    wide.load_state_dict({k: v.astype(np.float64) for k, v in state.items()})  # fine in float64
    assert wide.state_dict()["generator.bias"][0] == 1e39


# ----- 5. one model shared between threads -------------------------------------------------

@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_one_model_is_safe_to_share_between_threads(cls):
    model = small(cls, max_len=16).eval()
    rng = np.random.default_rng(0)
    inputs = [(rng.integers(0, 5, (3, 9)), rng.integers(0, 6, (3, 7))) for _ in range(4)]
    expected = [model.forward(s, t) for s, t in inputs]
    wrong = []

    def work(k):
        for i in range(60):
            s, t = inputs[(i + k) % len(inputs)]
            if not np.array_equal(model.forward(s, t), expected[(i + k) % len(inputs)]):
                wrong.append(i)
            model.generate(s, 4, 1, 2)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert wrong == []


# ----- 6. an empty batch ------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_an_empty_batch_is_refused_naming_src(cls):
    model = small(cls)
    with pytest.raises(ValueError, match="src: batch size must be at least 1"):
        model.forward(np.zeros((0, 3), np.int64), np.zeros((0, 2), np.int64))
    with pytest.raises(ValueError, match="src: batch size must be at least 1"):
        model.generate(np.zeros((0, 3), np.int64), 4, 1, 2)


# ----- 7. integers and reals beyond C's range ----------------------------------------------

def _flat(n=8):
    return np.zeros(n, np.float32)


BIG_SCALARS = [
    (lambda: ops.adam_step(_flat(), _flat(), _flat(), _flat(), step=2 ** 63), "step"),
    (lambda: ops.adam_step(_flat(), _flat(), _flat(), _flat(), step=1, lr=10 ** 400), "lr"),
    (lambda: ops.adam_step(_flat(), _flat(), _flat(), _flat(), step=1, eps=float("nan")), "eps"),
    (lambda: ops.sgd_step(_flat(), _flat(), None, step=1, lr=10 ** 400), "lr"),
    (lambda: ops.sgd_step(_flat(), _flat(), None, step=-2 ** 70), "step"),
    (lambda: ops.cross_entropy(np.ones((4, 3), np.float32), np.zeros(4, np.int64), ignore_index=2 ** 63),
     "ignore_index"),
    (lambda: ops.cross_entropy(np.ones((4, 3), np.float32), np.zeros(4, np.int64), label_smoothing=10 ** 400),
     "label_smoothing"),
    (lambda: ops.embedding_backward(np.ones((1, 4, 4), np.float32), np.zeros((1, 4), np.int64), 2 ** 63),
     "num_embeddings"),
    (lambda: ops.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), alpha=10 ** 400), "alpha"),
    (lambda: ops.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), alpha=1e39), "alpha"),
    (lambda: ops.clip_grad_norm(_flat(), 10 ** 400), "max_norm"),
    (lambda: ops.layer_norm_forward(np.ones((2, 4), np.float32), np.ones(4, np.float32), np.ones(4, np.float32),
                                    eps=10 ** 400), "eps"),
    (lambda: ops.dropout_forward(np.ones(8, np.float32), 0.5, 2 ** 64, 0, 0), "seed"),
    (lambda: ops.attention_forward(*[np.ones((1, 1, 2, 4), np.float32)] * 3, dropout_p=10 ** 400), "dropout_p"),
]


@pytest.mark.parametrize("call, name", BIG_SCALARS)
def test_out_of_range_scalars_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_optimizer_refuses_a_step_count_it_cannot_continue():
    model = small()
    opt = ff.optim.AdamW(model)
    state = opt.state_dict()
    state["steps"] = 2 ** 63 - 1
    with pytest.raises(ValueError, match="steps"):
        opt.load_state_dict(state)
    assert opt.steps == 0
    with pytest.raises(ValueError, match="lr"):
        ff.optim.AdamW(model, lr=float("inf"))


# ----- 8. empty feature axes: refused by the kernels and their twins alike -----------------

@pytest.mark.parametrize("module", [ops, R])
def test_layer_norm_refuses_an_empty_feature_axis(module):
    x, w = np.zeros((4, 0), np.float32), np.zeros(0, np.float32)
    with pytest.raises(ValueError, match="x must have a last axis of at least 1"):
        module.layer_norm_forward(x, w, w)
    with pytest.raises(ValueError, match="x must have a last axis of at least 1"):
        module.layer_norm_backward(x, x, w, np.zeros(4, np.float32), np.zeros(4, np.float32))


@pytest.mark.parametrize("impl", ["flash", "materialized", "reference"])
def test_attention_refuses_an_empty_head_width(impl):
    q = np.zeros((1, 1, 3, 0), np.float32)
    with pytest.raises(ValueError, match="head width dk of at least 1"):
        if impl == "reference":
            R.attention_forward(q, q, q)
        else:
            ops.attention_forward(q, q, q, impl=impl)


@pytest.mark.parametrize("impl", ["flash", "materialized"])
@pytest.mark.parametrize("shape", [(0, 2, 3, 4), (2, 0, 3, 4), (1, 2, 0, 4)])
def test_attention_on_empty_batches_agrees_with_the_reference(impl, shape):
    rng = np.random.default_rng(0)
    q = rng.standard_normal(shape).astype(np.float32)
    out, lse = ops.attention_forward(q, q, q, impl=impl)
    ref_out, ref_lse = R.attention_forward(q.astype(np.float64), q.astype(np.float64), q.astype(np.float64))
    assert out.shape == ref_out.shape and lse.shape == ref_lse.shape
    grads = ops.attention_backward(q, q, q, q, out, lse, impl=impl)
    assert [g.shape for g in grads] == [shape] * 3


def test_attention_with_no_keys_agrees_with_the_reference():
    q = np.ones((1, 2, 3, 4), np.float32)
    k = np.ones((1, 2, 0, 4), np.float32)
    for impl in ("flash", "materialized"):
        out, lse = ops.attention_forward(q, k, k, impl=impl)
        ref_out, ref_lse = R.attention_forward(q, k, k)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(lse, ref_lse)


def test_cross_entropy_of_no_rows_is_nan_like_the_reference():
    logits, targets = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    loss, dlogits = ops.cross_entropy(logits, targets)
    ref_loss, ref_d = R.cross_entropy(logits, targets)
    assert np.isnan(loss) and np.isnan(ref_loss) and dlogits.shape == ref_d.shape == (0, 4)


# ----- 9. constructor arguments and state dicts name what is wrong -------------------------

@pytest.mark.parametrize("overrides, name", [
    (dict(seed=-1), "seed"), (dict(seed=None), "seed"), (dict(seed=2 ** 64), "seed"), (dict(seed="3"), "seed"),
    (dict(dropout=None), "dropout"), (dict(dropout="0.1"), "dropout"), (dict(dropout=float("nan")), "dropout"),
    (dict(layer_norm_eps=None), "layer_norm_eps"), (dict(layer_norm_eps=float("inf")), "layer_norm_eps"),
    (dict(activation=None), "activation"), (dict(activation=["relu"]), "activation"),
    (dict(norm_first="yes"), "norm_first"), (dict(final_norm=None), "final_norm"),
    (dict(max_len=2.5), "max_len"), (dict(num_encoder_layers=-1), "num_encoder_layers"),
])
@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_bad_constructor_arguments_name_themselves(cls, overrides, name):
    with pytest.raises((TypeError, ValueError), match=name):
        small(cls, **overrides)


def test_a_ragged_value_in_load_state_dict_names_the_entry():
    model = small()
    state = model.state_dict()
    state["generator.bias"] = [[1, 2], [3]]
    with pytest.raises(TypeError, match=r"state_dict\['generator.bias'\] must be a numeric array"):
        model.load_state_dict(state)


# ----- 10. ids that are not 8-byte aligned; empty arrays ------------------------------------

def misaligned_int64(values):
    """A C-contiguous int64 array whose data is not 8-byte aligned."""
    values = np.asarray(values, np.int64)
    raw = np.zeros(values.nbytes + 1, np.uint8)[1:]
    out = raw.view(np.int64).reshape(values.shape)
    out[...] = values
    assert out.flags.c_contiguous and not out.flags.aligned
    return out


def test_misaligned_ids_and_targets_give_the_aligned_results():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (3, 5))
    weight = rng.standard_normal((7, 4)).astype(np.float32)
    positions = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.embedding_forward(misaligned_int64(ids), weight, positions),
                                  ops.embedding_forward(ids, weight, positions))
    dx = rng.standard_normal((3, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.embedding_backward(dx, misaligned_int64(ids), 7),
                                  ops.embedding_backward(dx, ids, 7))
    logits = rng.standard_normal((15, 7)).astype(np.float32)
    a = ops.cross_entropy(logits, misaligned_int64(ids.reshape(-1)))
    b = ops.cross_entropy(logits, ids.reshape(-1))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


# ----- non-finite values: the trainer stops before the update -------------------------------

def _trainer(clip):
    task = SyntheticTask("copy", batch_size=4, seed=0, max_len=4, heldout_size=4)
    V = len(task.vocab)
    model = ff.Transformer(V, V, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=16, dropout=0.0, max_len=8)
    return task, Trainer(model, ff.optim.AdamW(model, lr=1e-3), clip_grad_norm=clip, progress=False)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_non_finite_gradient_stops_training_before_the_update_naming_the_parameter(clip):
    task, trainer = _trainer(clip)
    trainer.train_step(task.get_batch(0))
    model = trainer.model
    before = model.state_dict()
    real_step = model.forward_backward  # the trainer's forward, loss and backward

    def poisoned_step(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        model._params["decoder.layers.0.linear1.weight"].grad[0, 0] = np.inf
        return loss

    model.forward_backward = poisoned_step
    with pytest.raises(NonFiniteLossError, match="step 2: the gradient norm is .*'decoder.layers.0.linear1.weight'"):
        trainer.train_step(task.get_batch(1))
    assert trainer.step == 1 and trainer.optimizer.steps == 1
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_an_update_that_makes_a_weight_non_finite_is_reported():
    """The backstop after the step: an update that overflows a weight is named at once."""
    task, trainer = _trainer(None)
    opt, model = trainer.optimizer, trainer.model
    real_update = opt._update

    def overflowing_update():
        real_update()
        model._params["encoder.layers.0.norm2.bias"].data[1] = np.inf

    opt._update = overflowing_update
    with pytest.raises(NonFiniteLossError, match="step 1: the optimizer step made the weights of "
                                                 "'encoder.layers.0.norm2.bias' non-finite"):
        trainer.train_step(task.get_batch(0))


def test_clip_grad_norm_leaves_non_finite_gradients_alone():
    model = small()
    model._flat_grad[:] = 1.0
    model._flat_grad[3] = np.inf
    before = model._flat_grad.copy()
    assert ff.optim.clip_grad_norm(model, 1.0) == np.inf
    np.testing.assert_array_equal(model._flat_grad, before)
    with pytest.raises(FloatingPointError, match="norm"):
        ff.optim.clip_grad_norm(model, 1.0, error_if_nonfinite=True)
    grad = before.astype(np.float64)
    assert reference_clip_grad_norm(grad, 1.0) == np.inf  # the twin agrees
    np.testing.assert_array_equal(grad, before)


def test_a_manifest_without_optional_entries_loads_as_model_only(tmp_path):
    """Fuzzing found: a manifest lacking the (optional) optimizer entry raised KeyError."""
    model = small()
    save_checkpoint(tmp_path, model, ff.optim.AdamW(model))
    rewrite_manifest(tmp_path, _del("optimizer"))
    loaded, ckpt = model_from_checkpoint(tmp_path, ff.Transformer)
    assert ckpt.optimizer_state is None
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path, small(), ff.optim.AdamW(small()))


def test_the_cli_refuses_a_model_too_large_in_one_line(tmp_path):
    proc = run_cli("train", "--layers", "1000000000", "--steps", "1", "--no-progress", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "out of memory" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("call", [
    lambda: ops.embedding_backward(np.ones((1, 2, 9), np.float32), np.zeros((1, 2), np.int64), 2 ** 40),
    lambda: ops.matmul(np.ones((10 ** 6, 0), np.float32), np.ones((0, 10 ** 6), np.float32)),
    lambda: ops.dropout_mask((10 ** 7, 10 ** 7), 0.5, 0, 0, 0),
])
def test_an_output_too_large_for_memory_is_refused_not_committed(call):
    """Fuzzing found: embedding_backward(..., num_embeddings=2**31) allocated a table the
    OS committed lazily, and the kernel's zero fill got the process killed."""
    with pytest.raises(MemoryError, match="GiB"):
        call()


def test_an_astronomically_large_model_is_refused_with_memory_error():
    """Fuzzing found: the size message itself overflowed a float for 10**300 layers."""
    with pytest.raises(MemoryError, match="GiB"):
        small(num_encoder_layers=10 ** 300)


@pytest.mark.parametrize("impl", ["flash", "materialized"])
def test_attention_gradients_with_no_keys_or_no_queries_are_zero(impl):
    q, none = np.ones((1, 2, 3, 4), np.float32), np.ones((1, 2, 0, 4), np.float32)
    for qq, kk in ((q, none), (none, q)):
        out, lse = ops.attention_forward(qq, kk, kk, impl=impl)
        dq, dk, dv = ops.attention_backward(np.ones_like(qq), qq, kk, kk, out, lse, impl=impl)
        ref = R.attention_backward(np.ones_like(qq), qq, kk, kk, out, lse)
        for ours, theirs in zip((dq, dk, dv), ref):
            np.testing.assert_array_equal(ours, theirs)
