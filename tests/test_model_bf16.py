"""The bf16 Transformer (compute_dtype="bfloat16"): against its float64 twin
that rounds the same product inputs, on every SIMD path (the AVX512-BF16
kernel where the CPU has it, the emulated path everywhere); against the
float32 model within the accuracy bf16 promises; cached decoding; learning
a built-in task; the argument checks. (Bitwise for any thread count:
test_model.py's thread test, in both precisions.)"""
import warnings

import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R
from fastformer.decoding import generate_uncached
from fastformer.model import precision

SIZES = dict(src_vocab_size=29, tgt_vocab_size=31, d_model=32, nhead=4, num_encoder_layers=2,
             num_decoder_layers=2, dim_feedforward=48, max_len=32)
B, S, T = 3, 9, 7

pytestmark = pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")


def batch(seed, padded=True):
    rng = np.random.default_rng(seed)
    src, tgt_in = rng.integers(0, SIZES["src_vocab_size"], (B, S)), rng.integers(0, SIZES["tgt_vocab_size"], (B, T))
    targets = rng.integers(0, SIZES["tgt_vocab_size"], (B, T))
    if not padded:
        return src, tgt_in, targets, None, None
    src_mask = np.arange(S)[None, :] >= np.array([S, 4, 6])[:, None]
    tgt_mask = np.arange(T)[None, :] >= np.array([T, 5, 2])[:, None]
    targets[tgt_mask] = -100
    return src, tgt_in, targets, src_mask, tgt_mask


def run(model, data):
    """forward + backward from zero gradients -> (logits, flat gradient copy)."""
    src, tgt_in, targets, src_mask, tgt_mask = data
    model.zero_grad()
    logits = model.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    _, dlogits = R.cross_entropy(logits, targets, label_smoothing=0.1)
    model.backward(dlogits.astype(np.float32))
    return np.asarray(logits, np.float64), model.flat_parameters()[1].astype(np.float64)


def models(compute_dtype="bfloat16", **config):
    """The compiled model and float64 reference twins in bf16 and fp32, one set of weights."""
    kwargs = {**SIZES, "dropout": 0.0, **config}
    ours = ff.Transformer(**kwargs, compute_dtype=compute_dtype)
    rng = np.random.default_rng(1)
    ours.load_state_dict({k: v + rng.normal(0.0, 0.1, v.shape).astype(np.float32)
                          for k, v in ours.state_dict().items()})
    twins = {cd: R.Transformer(**kwargs, dtype=np.float64, compute_dtype=cd) for cd in ("bfloat16", "float32")}
    for twin in twins.values():
        twin.load_state_dict(ours.state_dict())
    return ours, twins


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


CONFIGS = [dict(), dict(norm_first=True, activation="gelu"), dict(tie_embeddings=True, final_norm=False),
           dict(dropout=0.2, activation="gelu")]


def sentence(seed):
    """One short sentence pair, as a batch of 1."""
    rng = np.random.default_rng(100 + seed)
    return (rng.integers(0, SIZES["src_vocab_size"], (1, 6)), rng.integers(0, SIZES["tgt_vocab_size"], (1, 5)),
            rng.integers(0, SIZES["tgt_vocab_size"], (1, 5)), None, None)


@pytest.mark.parametrize("config", CONFIGS, ids=["post-relu", "pre-gelu", "tied-nofinal", "dropout"])
def test_bf16_model_matches_its_twin(bf16_simd, config):
    """Both round the same products' inputs, but the inputs themselves differ
    by float32 rounding, so now and then one lies on a bf16 rounding boundary
    and rounds the other way: about one element in 10^5, which a whole model
    meets in some runs (and whose effect there can reach bf16's own). So: on
    short single sentences most runs agree to float32 rounding (a product
    left in fp32, or rounded twice, would spoil every run), the rest within
    a few times bf16's own effect on this tiny model (a wrong model is O(1) off)."""
    ours, twins = models(**config)
    exact = 0
    for k in range(12):
        data = sentence(k)
        logits, grads = run(ours, data)
        t_logits, t_grads = run(twins["bfloat16"], data)
        fp32_logits, fp32_grads = run(twins["float32"], data)
        assert rel(logits, fp32_logits) > 1e-3  # bf16 is not fp32
        exact += rel(logits, t_logits) < 2e-6 and rel(grads, t_grads) < 2e-5
        assert rel(logits, t_logits) < 3e-2 and rel(grads, t_grads) < 0.1
    assert exact >= 8


def test_bf16_padded_batch_matches_its_twin():
    """Masks and a padded batch of 3 (rows round independently: a flip in one
    sentence leaves the others exact)."""
    ours, twins = models(dropout=0.1)
    logits, _ = run(ours, batch(0))
    t_logits, _ = run(twins["bfloat16"], batch(0))
    row_errors = [rel(logits[b], t_logits[b]) for b in range(B)]
    assert sorted(row_errors)[1] < 2e-6 and max(row_errors) < 1e-2


def torch_autocast_run(torch, state, config, data):
    """PyTorch on the same weights, fp32 or under bf16 autocast -> {dtype: (logits, flat gradient)}."""
    from torch_twin import twin_of

    src, tgt_in, targets, src_mask, tgt_mask = (None if a is None else torch.tensor(a) for a in data)
    out = {}
    for cd in ("bfloat16", "float32"):
        twin = twin_of(state, **config)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cd == "bfloat16"):
            logits = twin(src, tgt_in, src_mask, tgt_mask)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100,
                                                 label_smoothing=0.1)
        loss.backward()
        out[cd] = (logits.detach().double().numpy(),
                   np.concatenate([p.grad.double().numpy().ravel() for p in twin.parameters()]))
    return out


def test_bf16_is_within_its_accuracy_of_fp32(torch):
    """Against the same weights in fp32, over six batches: logits within the
    issue's 1e-2 (relative, norm-wise) on every batch. Gradients: the issue
    asks 3e-2, but on this model bf16 rounding alone gives 2.5-6% (the float64
    twin that rounds the same inputs, and PyTorch's bf16 autocast likewise), so
    what is held is that our bf16 kernels add nothing to the rounding's own
    error (the twin's mean) and are no less exact than PyTorch autocast."""
    config = dict(SIZES, d_model=64, nhead=4, dim_feedforward=256, num_encoder_layers=3, num_decoder_layers=3,
                  dropout=0.0)
    bf16, fp32 = ff.Transformer(**config, compute_dtype="bfloat16"), ff.Transformer(**config)
    twins = {cd: R.Transformer(**config, dtype=np.float64, compute_dtype=cd) for cd in ("bfloat16", "float32")}
    for twin in twins.values():
        twin.load_state_dict(fp32.state_dict())
    ours, exact, theirs = [], [], []
    for seed in range(6):
        data = batch(seed)
        (l16, g16), (l32, g32) = run(bf16, data), run(fp32, data)
        (t16, tg16), (t32, tg32) = run(twins["bfloat16"], data), run(twins["float32"], data)
        pt = torch_autocast_run(torch, fp32.state_dict(), config, data)
        assert rel(l16, l32) < 1e-2 and rel(pt["bfloat16"][0], pt["float32"][0]) < 1e-2
        ours.append(rel(g16, g32))
        exact.append(rel(tg16, tg32))
        theirs.append(rel(pt["bfloat16"][1], pt["float32"][1]))
    assert max(ours) < 0.1  # a wrong product is O(1) off
    assert np.mean(ours) < 1.15 * np.mean(exact), (ours, exact)
    assert np.mean(ours) < 1.15 * np.mean(theirs), (ours, theirs)


@pytest.mark.parametrize("beam_size,config", [(1, {}), (3, {}), (3, dict(norm_first=True, activation="gelu"))])
def test_bf16_cached_decoding_equals_uncached(bf16_simd, beam_size, config):
    """generate's packed bf16 weights give the bits of the model's own forward."""
    m, _ = models(**config)
    m.eval()
    src, _, _, src_mask, _ = batch(2)
    cached = m.generate(src, 10, 1, 2, beam_size=beam_size, src_key_padding_mask=src_mask)
    np.testing.assert_array_equal(cached, generate_uncached(m, src, 10, 1, 2, beam_size, src_mask))


# Training in bf16 learns the built-in task: tests/test_trainer.py's test_short_run_learns_reverse.


def test_compute_dtype_is_kept_out_of_the_config():
    """The same weights run in either precision: a checkpoint's config does not choose it."""
    m = ff.Transformer(**SIZES, compute_dtype="bfloat16")
    assert m.compute_dtype == "bfloat16" and "compute_dtype" not in m.config()
    assert ff.Transformer(**m.config()).compute_dtype == "float32"


@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
@pytest.mark.parametrize("value,error", [("bf16", ValueError), ("float16", ValueError), (np.float32, TypeError),
                                         (None, TypeError)])
def test_bad_compute_dtype(cls, value, error):
    with pytest.raises(error, match="compute_dtype"):
        cls(**SIZES, compute_dtype=value)


def test_emulated_bf16_warns_once(monkeypatch):
    monkeypatch.setattr(precision, "_warned", False)
    before = ff.get_simd()
    ff.set_simd("generic")
    try:
        with pytest.warns(RuntimeWarning, match="emulated"):
            ff.Transformer(**SIZES, compute_dtype="bfloat16")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ff.Transformer(**SIZES, compute_dtype="bfloat16")  # once per process
            ff.Transformer(**SIZES)
    finally:
        ff.set_simd(before)
