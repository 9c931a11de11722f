"""Parity of the NumPy reference with PyTorch (SPEC sections 1-2).

The reference model's ``state_dict()`` is loaded into its torch twin
(``torch.nn.Transformer`` plus embeddings and generator, see tests/torch_twin.py);
logits, loss and every parameter gradient must agree to 1e-10 (float64) and
1e-4 (float32), relative to each tensor's largest magnitude.
"""
import numpy as np
import pytest

from conftest import require_torch

torch = require_torch()
import torch.nn.functional as F  # noqa: E402

from fastformer.reference import Transformer, cross_entropy  # noqa: E402
from torch_twin import twin_of  # noqa: E402

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
SIZES = dict(src_vocab_size=11, tgt_vocab_size=13, d_model=16, nhead=4, num_encoder_layers=2,
             num_decoder_layers=2, dim_feedforward=32)
CONFIGS = {
    "post-relu": dict(norm_first=False, activation="relu"),
    "pre-gelu-tied": dict(norm_first=True, activation="gelu", tie_embeddings=True),
    "post-gelu-nofinal-tied": dict(norm_first=False, activation="gelu", final_norm=False,
                                   tie_embeddings=True),
}
B, S, T = 3, 7, 6
SMOOTHING = 0.1


def assert_close(ours, theirs, rtol, what):
    """max |ours - theirs| <= rtol * max |theirs|, for arrays of equal shape."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    err, scale = np.max(np.abs(ours - theirs)), np.max(np.abs(theirs))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} vs max |torch| {scale:.3e} (rel {err / scale:.3e} > {rtol:g})"


def make_batch(seed, padded):
    """src (B,S), tgt_in (B,T), targets (B,T) int64 and masks (B,S)/(B,T) bool (True = pad).

    Padding is on the right, plus one hole inside the first sequence of each, so
    that the target mask hides keys from unpadded causal queries too (right
    padding alone would only change the ignored positions). No sequence is
    fully padded (torch gives NaN there); padded targets are ignore_index (-100).
    """
    rng = np.random.default_rng(seed)
    src = rng.integers(0, SIZES["src_vocab_size"], (B, S))
    tgt_in = rng.integers(0, SIZES["tgt_vocab_size"], (B, T))
    targets = rng.integers(0, SIZES["tgt_vocab_size"], (B, T))
    if not padded:
        return src, tgt_in, targets, None, None
    src_mask = np.arange(S)[None, :] >= np.array([S, 4, 2])[:, None]
    tgt_mask = np.arange(T)[None, :] >= np.array([4, T, 1])[:, None]
    src_mask[0, 3] = tgt_mask[0, 1] = True
    targets[tgt_mask] = -100
    return src, tgt_in, targets, src_mask, tgt_mask


def make_model(config, dtype, seed=0):
    """A reference model with every parameter (LayerNorm, biases too) randomised."""
    model = Transformer(**SIZES, **config, dropout=0.0, max_len=32, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    state = {k: (v + rng.normal(0.0, 0.2, v.shape)).astype(dtype)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model


def run_both(config, dtype, padded=True, seed=0):
    """Forward + loss + backward on both models; returns (ours, torch) dicts."""
    model = make_model(config, dtype, seed)
    src, tgt_in, targets, src_mask, tgt_mask = make_batch(seed, padded)

    logits = model.forward(src, tgt_in, src_key_padding_mask=src_mask,
                           tgt_key_padding_mask=tgt_mask)
    loss, dlogits = cross_entropy(logits, targets, ignore_index=-100, label_smoothing=SMOOTHING)
    model.zero_grad()
    model.backward(dlogits)
    ours = dict(logits=logits, loss=loss,
                grads={n: p.grad.copy() for n, p in model.named_parameters()},
                state=model.state_dict())

    twin = twin_of(ours["state"], **SIZES, **config)
    as_t = (lambda a: None if a is None else torch.from_numpy(a))
    t_logits = twin(as_t(src), as_t(tgt_in), as_t(src_mask), as_t(tgt_mask))
    t_loss = F.cross_entropy(t_logits.reshape(-1, SIZES["tgt_vocab_size"]),
                             as_t(targets).reshape(-1), ignore_index=-100,
                             label_smoothing=SMOOTHING)
    t_loss.backward()
    theirs = dict(logits=t_logits, loss=t_loss,
                  grads={n: p.grad for n, p in twin.named_parameters()},
                  state=twin.state_dict())
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_loss_and_every_gradient_match_torch(name, dtype):
    ours, theirs = run_both(CONFIGS[name], dtype)
    rtol = RTOL[dtype]
    assert ours["logits"].dtype == dtype
    assert {k: v.shape for k, v in ours["state"].items()} == \
           {k: tuple(v.shape) for k, v in theirs["state"].items()}
    assert set(ours["grads"]) == set(theirs["grads"])
    assert_close(ours["logits"], theirs["logits"], rtol, "logits")
    assert abs(ours["loss"] - theirs["loss"].item()) <= rtol * abs(theirs["loss"].item())
    for n, g in theirs["grads"].items():
        assert_close(ours["grads"][n], g, rtol, f"grad {n}")


def test_without_masks_matches_torch():
    ours, theirs = run_both(CONFIGS["pre-gelu-tied"], np.float64, padded=False, seed=3)
    assert_close(ours["logits"], theirs["logits"], 1e-10, "logits")
    for n, g in theirs["grads"].items():
        assert_close(ours["grads"][n], g, 1e-10, f"grad {n}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(10,), (3, 4)], ids=["2d", "3d"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_matches_torch(shape, ignore_index, smoothing, dtype):
    """logits (*shape, V), targets shape; about a third of the targets are ignored."""
    V = 7
    rng = np.random.default_rng(len(shape))
    logits = (3 * rng.standard_normal(shape + (V,))).astype(dtype)
    targets = rng.integers(0, V, shape)
    targets[rng.random(shape) < 0.3] = ignore_index
    loss, dlogits = cross_entropy(logits, targets, ignore_index=ignore_index,
                                  label_smoothing=smoothing)
    assert isinstance(loss, float) and dlogits.shape == logits.shape and dlogits.dtype == dtype

    x = torch.from_numpy(logits).requires_grad_()
    t_loss = F.cross_entropy(x.reshape(-1, V), torch.from_numpy(targets).reshape(-1),
                             ignore_index=ignore_index, label_smoothing=smoothing)
    t_loss.backward()
    assert abs(loss - t_loss.item()) <= RTOL[dtype] * abs(t_loss.item())
    assert_close(dlogits, x.grad, RTOL[dtype], "dlogits")


def test_cross_entropy_all_targets_ignored_matches_torch():
    """torch: loss NaN (0/0 mean) and gradient exactly 0."""
    logits = np.random.default_rng(0).standard_normal((2, 3, 5))
    targets = np.full((2, 3), -100)
    x = torch.from_numpy(logits).requires_grad_()
    t_loss = F.cross_entropy(x.reshape(-1, 5), torch.from_numpy(targets).reshape(-1),
                             label_smoothing=0.1)
    t_loss.backward()
    loss, dlogits = cross_entropy(logits, targets, label_smoothing=0.1)
    np.testing.assert_equal(loss, t_loss.item())  # NaN == NaN here
    np.testing.assert_array_equal(dlogits, x.grad.numpy())
