"""The reference Transformer: finite-difference gradients of every parameter,
dropout bookkeeping, the flat buffers, state dicts and input checks."""
import numpy as np
import pytest

from fastformer import reference as R
from fd_check import assert_grad, numeric_grad

V_SRC, V_TGT, B, S, T = 11, 13, 2, 5, 4
TINY = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16)


def make(dtype=np.float64, **overrides):
    config = {**TINY, "dropout": 0.0, **overrides}
    return R.Transformer(V_SRC, V_TGT, dtype=dtype, **config)


def batch(seed=0, masks=False):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, V_SRC, (B, S))
    tgt = rng.integers(0, V_TGT, (B, T))
    src_mask = tgt_mask = None
    if masks:
        src_mask = np.zeros((B, S), dtype=bool)
        src_mask[0, -2:] = True
        tgt_mask = np.zeros((B, T), dtype=bool)
        tgt_mask[1, -1] = True
    return dict(src=src, tgt_in=tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)


CONFIGS = [
    # (norm_first, activation, tie_embeddings, final_norm, masks, dropout)
    (False, "relu", False, True, False, 0.0),
    (False, "relu", False, True, True, 0.0),
    (True, "gelu", False, True, True, 0.0),
    (False, "gelu", True, True, True, 0.0),
    (True, "relu", True, False, False, 0.0),
    (False, "relu", False, True, True, 0.2),
    (True, "gelu", True, True, True, 0.2),
]


@pytest.mark.parametrize("norm_first,activation,tie,final_norm,masks,dropout", CONFIGS)
def test_model_gradients(norm_first, activation, tie, final_norm, masks, dropout):
    model = make(norm_first=norm_first, activation=activation, tie_embeddings=tie,
                 final_norm=final_norm, dropout=dropout, seed=3)
    inputs = batch(1, masks)
    rng = np.random.default_rng(2)
    r = rng.standard_normal((B, T, V_TGT))
    step = model.rng_step

    def loss():
        model.rng_step = step  # the same dropout masks for every evaluation
        return float(np.sum(model.forward(**inputs) * r))

    model.zero_grad()
    loss()
    model.backward(r)
    used = {"src_embedding.weight": inputs["src"], "tgt_embedding.weight": inputs["tgt_in"]}
    for name, p in model.named_parameters():
        if name in used and not (tie and name == "tgt_embedding.weight"):
            # Rows of ids in the batch; every other row's gradient is exactly 0.
            rows = np.unique(used[name])
            assert np.all(np.delete(p.grad, rows, axis=0) == 0), name
            idx = (rows[rng.integers(0, len(rows), 4)] * p.shape[1] + rng.integers(0, p.shape[1], 4))
            num = numeric_grad(loss, p.data, idx)
            ana = p.grad.reshape(-1)[idx]
            assert np.abs(num - ana).max() < 1e-6 * np.abs(p.grad).max(), name
        else:
            assert_grad(loss, p.data, p.grad.copy(), rng, k=4, name=name)


def test_gradients_accumulate_and_zero_grad():
    model = make()
    inputs = batch(0, masks=True)
    dlogits = np.random.default_rng(0).standard_normal((B, T, V_TGT))
    model.forward(**inputs)
    model.backward(dlogits)
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.forward(**inputs)
    model.backward(dlogits)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-13, atol=1e-300, err_msg=n)
    model.zero_grad()
    assert all(np.all(p.grad == 0) for p in model.parameters())


def test_float32_agrees_with_float64():
    inputs = batch(4, masks=True)
    dlogits = np.random.default_rng(1).standard_normal((B, T, V_TGT))
    out = {}
    for dtype in (np.float32, np.float64):
        model = make(dtype, norm_first=True, activation="gelu", dropout=0.1, seed=5)
        logits = model.forward(**inputs)
        assert logits.dtype == dtype
        model.backward(dlogits.astype(dtype))
        out[dtype] = logits, {n: p.grad.copy() for n, p in model.named_parameters()}
        assert all(p.data.dtype == dtype and p.grad.dtype == dtype for p in model.parameters())
    (l32, g32), (l64, g64) = out[np.float32], out[np.float64]
    np.testing.assert_allclose(l32, l64, rtol=1e-4, atol=1e-4 * np.abs(l64).max())
    for n in g64:
        np.testing.assert_allclose(g32[n], g64[n], rtol=1e-4, atol=1e-4 * np.abs(g64[n]).max(),
                                   err_msg=n)


def test_dropout_steps_and_modes():
    model = make(dropout=0.3, seed=9)
    inputs = batch(0)
    assert model.training and model.rng_step == 0
    a = model.forward(**inputs)
    b = model.forward(**inputs)
    assert model.rng_step == 2
    assert not np.allclose(a, b)  # a new step draws new masks
    model.rng_step = 0
    np.testing.assert_array_equal(model.forward(**inputs), a)  # masks are a function of the step
    assert model.eval() is model and not model.training
    c = model.forward(**inputs)
    assert model.rng_step == 1  # eval forwards draw no masks
    np.testing.assert_array_equal(model.forward(**inputs), c)
    np.testing.assert_array_equal(c, make(dropout=0.0, seed=9).forward(**inputs))
    model.train()
    assert model.training


def test_embedding_dropout_sites():
    """With no layers, logits = Drop(embed(tgt_in)) Wg^T + bg: the target
    embedding's mask is the contract's, at site dropout_site(0, 0, 1)."""
    model = make(num_encoder_layers=0, num_decoder_layers=0, final_norm=False, dropout=0.5, seed=77)
    inputs = batch(5)
    model.rng_step = 6
    logits = model.forward(**inputs)
    w = model.state_dict()
    x = R.embedding_forward(inputs["tgt_in"], w["tgt_embedding.weight"], model.positions)
    x = R.dropout_forward(x, 0.5, 77, 6, R.dropout_site(0, 0, 1))
    np.testing.assert_allclose(logits, x @ w["generator.weight"].T + w["generator.bias"], rtol=1e-12)


def test_eval_backward_needs_no_dropout():
    model = make(dropout=0.3).eval()
    ref = make(dropout=0.0)
    inputs = batch(2, masks=True)
    r = np.random.default_rng(0).standard_normal((B, T, V_TGT))
    for m in (model, ref):
        m.forward(**inputs)
        m.backward(r)
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=n)


def test_parameter_names_layout_and_views():
    model = make(final_norm=True)
    names = [n for n, _ in model.named_parameters()]
    assert names[:4] == ["encoder.layers.0.self_attn.in_proj_weight",
                         "encoder.layers.0.self_attn.in_proj_bias",
                         "encoder.layers.0.self_attn.out_proj.weight",
                         "encoder.layers.0.self_attn.out_proj.bias"]
    assert names[-4:] == ["src_embedding.weight", "tgt_embedding.weight",
                          "generator.weight", "generator.bias"]
    assert "decoder.layers.0.multihead_attn.in_proj_weight" in names
    assert "decoder.layers.0.norm3.bias" in names and "encoder.norm.weight" in names
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    assert shapes["encoder.layers.1.linear1.weight"] == (16, 8)
    assert shapes["decoder.layers.0.self_attn.in_proj_weight"] == (24, 8)
    # One flat buffer each for data and grads, in order and without gaps.
    params = list(model.parameters())
    base, gbase = params[0].data, params[0].grad
    offset = 0
    for p in params:
        assert p.data.__array_interface__["data"][0] == base.__array_interface__["data"][0] + offset
        assert p.grad.__array_interface__["data"][0] == gbase.__array_interface__["data"][0] + offset
        offset += p.data.nbytes
    tied = make(tie_embeddings=True, final_norm=False)
    tied_names = [n for n, _ in tied.named_parameters()]
    assert "generator.weight" not in tied_names and "generator.bias" in tied_names
    assert "encoder.norm.weight" not in tied_names and "decoder.norm.bias" not in tied_names


def test_initialisation():
    model = make(seed=0)
    d = TINY["d_model"]
    for name, p in model.named_parameters():
        if "embedding" in name:
            assert abs(p.data.std() - d ** -0.5) < 0.25 * d ** -0.5, name
        elif "norm" in name:
            assert np.all(p.data == (1 if name.endswith("weight") else 0)), name
        elif p.data.ndim == 1:
            assert np.all(p.data == 0), name
        else:
            bound = np.sqrt(6 / sum(p.shape))
            assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound, name
    np.testing.assert_array_equal(make(seed=0).state_dict()["generator.weight"],
                                  model.state_dict()["generator.weight"])
    assert not np.array_equal(make(seed=1).state_dict()["generator.weight"],
                              model.state_dict()["generator.weight"])


def test_state_dict_round_trip():
    a, b = make(seed=1), make(seed=2)
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    state["generator.bias"][0] = 123.0  # a copy: the model is unchanged
    assert a.state_dict()["generator.bias"][0] != 123.0
    b.load_state_dict(a.state_dict())
    inputs = batch(3, masks=True)
    np.testing.assert_array_equal(a.forward(**inputs), b.forward(**inputs))
    c = make(dtype=np.float32)
    c.load_state_dict(a.state_dict())  # converted into the model's dtype
    assert c.state_dict()["generator.weight"].dtype == np.float32
    np.testing.assert_allclose(c.state_dict()["generator.weight"], a.state_dict()["generator.weight"],
                               rtol=1e-6)


def test_load_state_dict_errors():
    model = make()
    good = model.state_dict()
    before = model.state_dict()

    missing = dict(good)
    del missing["encoder.norm.bias"]
    with pytest.raises(ValueError, match="encoder.norm.bias"):
        model.load_state_dict(missing)
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["encoder.norm.bias"] and result.unexpected_keys == []

    extra = {**good, "decoder.layers.7.norm1.weight": np.ones(8)}
    with pytest.raises(ValueError, match="decoder.layers.7.norm1.weight"):
        model.load_state_dict(extra)
    assert model.load_state_dict(extra, strict=False).unexpected_keys == [
        "decoder.layers.7.norm1.weight"]

    changed = {k: v + 1 for k, v in good.items()}
    changed["generator.bias"] = np.zeros(V_TGT + 1)
    with pytest.raises(ValueError, match="generator.bias"):
        model.load_state_dict(changed)
    changed["generator.bias"] = np.zeros(V_TGT)
    changed["src_embedding.weight"][2, 1] = np.nan
    with pytest.raises(ValueError, match="src_embedding.weight"):
        model.load_state_dict(changed)
    changed["src_embedding.weight"] = np.full((V_SRC, 8), "x")
    with pytest.raises(TypeError, match="src_embedding.weight"):
        model.load_state_dict(changed)
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([("generator.bias", np.zeros(V_TGT))])
    for name, value in model.state_dict().items():  # a failed load changes nothing
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    with pytest.raises(ValueError, match="generator.weight"):
        make(tie_embeddings=True).load_state_dict(good)


def test_forward_input_checks():
    model = make()
    ok = batch(0, masks=True)

    def call(**changes):
        model.forward(**{**ok, **changes})

    with pytest.raises(TypeError, match="src"):
        call(src=ok["src"].astype(np.float64))
    with pytest.raises(TypeError, match="tgt_in"):
        call(tgt_in=ok["tgt_in"] > 3)
    with pytest.raises(ValueError, match="src"):
        call(src=ok["src"][0])
    with pytest.raises(ValueError, match="src"):
        call(src=np.full((B, S), V_SRC))
    with pytest.raises(ValueError, match="tgt_in"):
        call(tgt_in=np.full((B, T), -1))
    with pytest.raises(ValueError, match="tgt_in"):
        call(tgt_in=ok["tgt_in"][:1])
    with pytest.raises(ValueError, match="max_len"):
        make(max_len=4).forward(ok["src"], ok["tgt_in"])
    with pytest.raises(TypeError, match="src_key_padding_mask"):
        call(src_key_padding_mask=ok["src_key_padding_mask"].astype(np.int8))
    with pytest.raises(ValueError, match="src_key_padding_mask"):
        call(src_key_padding_mask=np.zeros((B, S + 1), dtype=bool))
    with pytest.raises(ValueError, match="tgt_key_padding_mask"):
        call(tgt_key_padding_mask=np.zeros((B, S), dtype=bool))
    for ids in (np.uint8, np.int16, np.int32):
        model.forward(ok["src"].astype(ids), ok["tgt_in"].astype(ids))


def test_backward_checks():
    model = make()
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.zeros((B, T, V_TGT)))
    model.forward(**batch(0))
    with pytest.raises(ValueError, match="dlogits"):
        model.backward(np.zeros((B, T, V_TGT + 1)))
    with pytest.raises(TypeError, match="dlogits"):
        model.backward(np.zeros((B, T, V_TGT), dtype=np.int64))
    model.backward(np.zeros((B, T, V_TGT)))
    with pytest.raises(RuntimeError, match="forward"):  # one backward per forward
        model.backward(np.zeros((B, T, V_TGT)))


@pytest.mark.parametrize("kwargs,error", [
    (dict(d_model=10, nhead=3), ValueError),
    (dict(dropout=1.0), ValueError),
    (dict(activation="tanh"), ValueError),
    (dict(num_encoder_layers=-1), ValueError),
    (dict(dim_feedforward=0), ValueError),
    (dict(dtype=np.float16), TypeError),
])
def test_constructor_checks(kwargs, error):
    name = next(iter(kwargs)) if "nhead" not in kwargs else "nhead"
    with pytest.raises(error, match=name):
        make(**kwargs)
