"""Reference optimizer updates against torch.optim, step by step."""
import numpy as np
import pytest

from fastformer.reference import optim

STEPS = 6


def run_ours(kind, dtype, grads, param0, **hp):
    param = param0.astype(dtype)
    a, b = np.zeros_like(param), np.zeros_like(param)
    for step, g in enumerate(grads, start=1):
        g = g.astype(dtype)
        if kind == "sgd":
            optim.sgd_step(param, g, a, step, **hp)
        else:
            optim.adam_step(param, g, a, b, step, decoupled=(kind == "adamw"), **hp)
    return param


def run_torch(torch, kind, dtype, grads, param0, **hp):
    p = torch.nn.Parameter(torch.tensor(param0, dtype=dtype))
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[kind]
    opt = cls([p], **hp)
    for g in grads:
        p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
    return p.detach().numpy()


CASES = [
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", dict(lr=1e-2, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)),
    ("sgd", dict(lr=0.1, momentum=0.0, weight_decay=0.0)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
]


def ours_hp(hp):
    hp = dict(hp)
    if "betas" in hp:
        hp["beta1"], hp["beta2"] = hp.pop("betas")
    return hp


@pytest.mark.parametrize("kind, hp", CASES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_matches_torch(torch, kind, hp, dtype, rtol):
    rng = np.random.default_rng(0)
    param0 = rng.standard_normal(101)
    grads = [rng.standard_normal(101) for _ in range(STEPS)]
    ours = run_ours(kind, dtype, grads, param0, **ours_hp(hp))
    theirs = run_torch(torch, kind, getattr(torch, np.dtype(dtype).name), grads, param0, **hp)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(torch, max_norm):
    rng = np.random.default_rng(1)
    g = rng.standard_normal(1000)
    ours = g.copy()
    norm = optim.clip_grad_norm(ours, max_norm)
    p = torch.nn.Parameter(torch.zeros(1000, dtype=torch.float64))
    p.grad = torch.tensor(g)
    torch_norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
    assert norm == pytest.approx(float(torch_norm), rel=1e-12)
    np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-12)


def test_step_must_start_at_one():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="step must be >= 1"):
        optim.adam_step(x, x, x.copy(), x.copy(), 0)
    with pytest.raises(ValueError, match="step must be >= 1"):
        optim.sgd_step(x, x, x.copy(), 0)
