"""fastformer.optim against torch.optim, state round trips, and schedules."""
import json
import math

import numpy as np
import pytest

import fastformer as ff
from fastformer.optim import (
    SGD, Adam, AdamW, ConstantSchedule, NoamSchedule, WarmupCosineSchedule, clip_grad_norm,
    grad_norm, schedule_from_config)

STEPS = 4


def tiny_model(dtype=np.float32, seed=0):
    return ff.reference.Transformer(7, 9, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=24, dropout=0.0, max_len=8, seed=seed, dtype=dtype)


def fake_grads(model, steps, seed=1):
    """Per step, a {name: gradient} of the model's shapes."""
    rng = np.random.default_rng(seed)
    return [{n: rng.standard_normal(p.shape) for n, p in model.named_parameters()} for _ in range(steps)]


def run_ours(model, opt, grads, clip=None):
    for g in grads:
        opt.zero_grad()
        for name, p in model.named_parameters():
            p.grad[...] = g[name]
        if clip is not None:
            clip_grad_norm(model, clip)
        opt.step()
    return model.state_dict()


def run_torch(torch, model, cls, hp, grads, clip=None, dtype=None):
    dtype = dtype or torch.float32
    params = {n: torch.nn.Parameter(torch.tensor(p.data, dtype=dtype)) for n, p in model.named_parameters()}
    opt = cls(list(params.values()), **hp)
    for g in grads:
        for name, p in params.items():
            p.grad = torch.tensor(g[name], dtype=dtype)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
        opt.step()
    return {n: p.detach().numpy() for n, p in params.items()}


CASES = [
    (Adam, "Adam", dict(lr=1e-2, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)),
    (Adam, "Adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, "AdamW", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
    (SGD, "SGD", dict(lr=0.1)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=1e-3)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
]


@pytest.mark.parametrize("ours, theirs, hp", CASES)
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_matches_torch(torch, ours, theirs, hp, dtype, rtol):
    model = tiny_model(dtype)
    grads = fake_grads(model, STEPS)
    expected = run_torch(torch, model, getattr(torch.optim, theirs), hp, grads,
                         dtype=getattr(torch, np.dtype(dtype).name))
    got = run_ours(model, ours(model, **hp), grads)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=rtol, err_msg=name)


def test_clip_grad_norm_matches_torch(torch):
    model = tiny_model(np.float64)
    grads = fake_grads(model, STEPS)
    hp = dict(lr=1e-2)
    expected = run_torch(torch, model, torch.optim.Adam, hp, grads, clip=0.5, dtype=torch.float64)
    got = run_ours(model, Adam(model, **hp), grads, clip=0.5)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_clip_returns_norm_before_clipping():
    model = tiny_model(np.float64)
    for _, p in model.named_parameters():
        p.grad[...] = 1.0
    n = sum(p.grad.size for _, p in model.named_parameters())
    assert grad_norm(model) == pytest.approx(math.sqrt(n))
    assert clip_grad_norm(model, 1.0) == pytest.approx(math.sqrt(n))
    assert grad_norm(model) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(model, 0.0)


@pytest.mark.parametrize("cls, hp", [(AdamW, dict(lr=1e-2)), (SGD, dict(lr=0.1, momentum=0.9))])
def test_state_dict_round_trip_continues_identically(cls, hp):
    """Stopping after 2 steps and restoring into a fresh optimizer gives the same next steps."""
    grads = fake_grads(tiny_model(), 4)
    straight = tiny_model()
    run_ours(straight, cls(straight, **hp), grads)

    first = tiny_model()
    opt = cls(first, **hp)
    run_ours(first, opt, grads[:2])
    state = opt.state_dict()
    json.dumps({k: v for k, v in state.items() if k != "state"})  # plain values only
    second = tiny_model(seed=5)
    second.load_state_dict(first.state_dict())
    opt2 = cls(second, lr=123.0)
    opt2.load_state_dict(state)
    assert opt2.lr == hp["lr"] and opt2.steps == 2
    run_ours(second, opt2, grads[2:])
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[name], value)


def test_load_state_dict_refuses_bad_state():
    model = tiny_model()
    opt = AdamW(model)
    good = opt.state_dict()
    with pytest.raises(ValueError, match="for SGD"):
        AdamW(model).load_state_dict(SGD(model).state_dict())
    bad = dict(good, state=dict(good["state"], exp_avg=np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    nan = good["state"]["exp_avg"].copy()
    nan[0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        opt.load_state_dict(dict(good, state=dict(good["state"], exp_avg=nan)))
    with pytest.raises(ValueError, match="betas"):
        opt.load_state_dict(dict(good, hyperparameters=dict(good["hyperparameters"], betas=[1.5, 0.9])))


def test_bad_hyperparameters():
    model = tiny_model()
    with pytest.raises(ValueError, match="lr"):
        Adam(model, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(model, betas=(0.9,))
    with pytest.raises(ValueError, match="nesterov"):
        SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="flat buffers"):
        Adam(object())


def test_lr_is_a_plain_attribute():
    model = tiny_model(np.float64)
    opt = SGD(model, lr=0.5)
    before = model.state_dict()
    for _, p in model.named_parameters():
        p.grad[...] = 1.0
    opt.lr = 0.25
    opt.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.data, before[name] - 0.25)


def test_noam_schedule():
    s = NoamSchedule(d_model=512, warmup=4000)
    assert s(1) == pytest.approx(512 ** -0.5 * 4000 ** -1.5)
    assert s(4000) == pytest.approx(512 ** -0.5 * 4000 ** -0.5)  # the peak
    assert s(16000) == pytest.approx(512 ** -0.5 * 16000 ** -0.5)
    assert s(3999) < s(4000) > s(4001)
    assert NoamSchedule(64, 10, factor=2.0)(5) == pytest.approx(2 * 64 ** -0.5 * 5 * 10 ** -1.5)


def test_warmup_cosine_schedule():
    s = WarmupCosineSchedule(lr=1.0, warmup=10, total_steps=110, min_lr=0.1)
    assert s(1) == pytest.approx(0.1) and s(5) == pytest.approx(0.5) and s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    values = [s(k) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_constant_schedule_and_configs():
    assert ConstantSchedule(3e-4)(1) == ConstantSchedule(3e-4)(10 ** 6) == 3e-4
    for s in (ConstantSchedule(0.1), NoamSchedule(32, 100, 0.5), WarmupCosineSchedule(1e-3, 5, 50)):
        config = json.loads(json.dumps(s.config()))
        rebuilt = schedule_from_config(config)
        assert rebuilt == s and [rebuilt(k) for k in (1, 7, 70)] == [s(k) for k in (1, 7, 70)]
    with pytest.raises(ValueError, match="step"):
        NoamSchedule(32)(0)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_from_config({"name": "nope"})
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosineSchedule(1e-3, warmup=10, total_steps=5)


def test_float32_uses_compiled_kernels_when_present(monkeypatch):
    """float32 models go through fastformer.ops.<kernel> when it exists; float64 ones never do."""
    import fastformer.reference.optim as ref

    calls = []

    def spy(name):
        def kernel(*args, **kwargs):
            calls.append(name)
            return getattr(ref, name)(*args, **kwargs)
        return kernel

    for name in ("adam_step", "sgd_step", "clip_grad_norm", "grad_norm"):
        monkeypatch.setattr(ff.ops, name, spy(name), raising=False)
    for dtype, expected in [(np.float64, []), (np.float32, ["clip_grad_norm", "adam_step", "sgd_step"])]:
        calls.clear()
        model = tiny_model(dtype)
        clip_grad_norm(model, 1.0)
        AdamW(model).step()
        SGD(model, lr=0.1).step()
        assert calls == expected
