"""The compiled Transformer against the NumPy reference and PyTorch: logits
and every gradient, dropout masks, AdamW training, thread counts, workspace
reuse, the shared layout and input checks."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R

SIZES = dict(src_vocab_size=11, tgt_vocab_size=13, d_model=16, nhead=4, num_encoder_layers=2,
             num_decoder_layers=2, dim_feedforward=32)
B, S, T = 3, 7, 6


def assert_close(ours, theirs, rtol, what):
    """max |ours - theirs| <= rtol * max |theirs| (a tolerance scaled to the tensor)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    err, scale = np.max(np.abs(ours - theirs)), np.max(np.abs(theirs))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} vs max |expected| {scale:.3e}"


def make_batch(seed, padded, b=B, s=S, t=T, holes=True):
    """src, tgt_in, targets and masks. Padding on the right plus holes inside
    rows, and (with holes) a target row whose first position is padding, so
    one causal query sees no key at all."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, SIZES["src_vocab_size"], (b, s))
    tgt_in = rng.integers(0, SIZES["tgt_vocab_size"], (b, t))
    targets = rng.integers(0, SIZES["tgt_vocab_size"], (b, t))
    if not padded:
        return src, tgt_in, targets, None, None
    src_mask = np.arange(s)[None, :] >= rng.integers(2, s + 1, b)[:, None]
    tgt_mask = np.arange(t)[None, :] >= rng.integers(2, t + 1, b)[:, None]
    if holes:
        src_mask[0, 1] = tgt_mask[0, 1] = True
        tgt_mask[-1, 0] = True
    targets[tgt_mask] = -100
    return src, tgt_in, targets, src_mask, tgt_mask


def randomize(model, seed):
    """Perturb every parameter (LayerNorm and biases too), so none is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    model.load_state_dict({k: v + rng.normal(0.0, 0.2, v.shape).astype(v.dtype)
                           for k, v in model.state_dict().items()})
    return model


def pair(seed=0, **config):
    """A compiled model and its float32 reference twin with identical weights."""
    kwargs = {**SIZES, "dropout": 0.0, "max_len": 32, "seed": seed, **config}
    ours = randomize(ff.Transformer(**kwargs), seed + 1)
    ref = R.Transformer(**kwargs)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def step(model, batch, dlogits=None):
    """forward + backward from zero gradients -> (logits, {name: grad copy})."""
    src, tgt_in, targets, src_mask, tgt_mask = batch
    model.zero_grad()
    logits = model.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    if dlogits is None:
        _, dlogits = ff.reference.cross_entropy(logits, targets, label_smoothing=0.1)
    model.backward(dlogits)
    return logits, {n: p.grad.copy() for n, p in model.named_parameters()}


CONFIGS = [
    # norm_first, activation, tie_embeddings, final_norm, padded, dropout
    (False, "relu", False, True, False, 0.0),
    (False, "relu", False, True, True, 0.0),
    (True, "gelu", False, True, True, 0.0),
    (False, "gelu", True, True, True, 0.0),
    (True, "relu", True, False, True, 0.0),
    (False, "relu", False, False, True, 0.3),
    (True, "gelu", True, True, True, 0.3),
    (False, "gelu", False, True, True, 0.1),
]


@pytest.mark.parametrize("norm_first,activation,tie,final_norm,padded,dropout", CONFIGS)
def test_matches_reference(norm_first, activation, tie, final_norm, padded, dropout):
    ours, ref = pair(norm_first=norm_first, activation=activation, tie_embeddings=tie,
                     final_norm=final_norm, dropout=dropout)
    for k in range(2):  # two training steps: rng_step 0 then 1 draw different masks
        batch = make_batch(k, padded)
        assert ours.rng_step == ref.rng_step == k
        (l_ours, g_ours), (l_ref, g_ref) = step(ours, batch), step(ref, batch)
        assert l_ours.dtype == np.float32
        assert_close(l_ours, l_ref, 1e-4, "logits")
        for name in g_ref:
            assert_close(g_ours[name], g_ref[name], 1e-4, name)
    ours.eval(), ref.eval()
    batch = make_batch(5, padded)
    assert_close(step(ours, batch)[0], step(ref, batch)[0], 1e-4, "eval logits")
    assert ours.rng_step == 2


@pytest.mark.parametrize("layers", [(0, 2), (2, 0), (1, 1)])
def test_matches_reference_any_depth(layers):
    ours, ref = pair(num_encoder_layers=layers[0], num_decoder_layers=layers[1], dropout=0.2)
    batch = make_batch(3, True)
    (l_ours, g_ours), (l_ref, g_ref) = step(ours, batch), step(ref, batch)
    assert_close(l_ours, l_ref, 1e-4, "logits")
    for name in g_ref:
        assert_close(g_ours[name], g_ref[name], 1e-4, name)


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_reference_for_any_source_and_target_lengths(norm_first):
    """Longer and shorter sources than targets, one model: the plans of the
    two shapes share its workspace, and the gradient scratch holds the
    memory's rows beside the decoder's (plan.py)."""
    ours, ref = pair(norm_first=norm_first, dropout=0.1)
    for k, (s, t) in enumerate([(4, 11), (12, 3), (4, 11)]):
        batch = make_batch(k, True, s=s, t=t)
        (l_ours, g_ours), (l_ref, g_ref) = step(ours, batch), step(ref, batch)
        assert_close(l_ours, l_ref, 1e-4, f"logits {s}x{t}")
        for name in g_ref:
            assert_close(g_ours[name], g_ref[name], 1e-4, f"{name} {s}x{t}")


def test_gradients_accumulate():
    ours, _ = pair(dropout=0.0)
    batch = make_batch(0, True)
    dl = np.random.default_rng(0).standard_normal((B, T, SIZES["tgt_vocab_size"])).astype(np.float32)
    _, once = step(ours, batch, dl)
    ours.forward(*batch[:2], batch[3], batch[4])
    ours.backward(dl)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-5, atol=1e-6 * np.abs(once[n]).max(), err_msg=n)


# ----- PyTorch ----------------------------------------------------------------------------

TORCH_CONFIGS = {
    "post-relu": dict(norm_first=False, activation="relu"),
    "pre-gelu-tied": dict(norm_first=True, activation="gelu", tie_embeddings=True),
    "post-gelu-nofinal": dict(norm_first=False, activation="gelu", final_norm=False),
}


def torch_twin(torch, model):
    from torch_twin import twin_of

    return twin_of(model.state_dict(), **{k: v for k, v in model.config().items()
                                          if k not in ("dropout", "max_len", "seed")})


@pytest.mark.parametrize("name", list(TORCH_CONFIGS))
def test_matches_torch(torch, name):
    ours, _ = pair(**TORCH_CONFIGS[name])
    src, tgt_in, targets, src_mask, tgt_mask = batch = make_batch(7, True, holes=False)
    logits, grads = step(ours, batch)
    twin = torch_twin(torch, ours)
    t = torch.from_numpy
    t_logits = twin(t(src), t(tgt_in), t(src_mask), t(tgt_mask))
    torch.nn.functional.cross_entropy(t_logits.reshape(-1, SIZES["tgt_vocab_size"]), t(targets).reshape(-1),
                                      ignore_index=-100, label_smoothing=0.1).backward()
    assert_close(logits, t_logits, 1e-4, "logits")
    for n, p in twin.named_parameters():
        assert_close(grads[n], p.grad, 1e-4, n)


def test_five_adamw_steps_match_torch(torch):
    ours, _ = pair(norm_first=False, activation="relu")
    twin = torch_twin(torch, ours)
    hp = dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01)
    opt, t_opt = ff.optim.AdamW(ours, **hp), torch.optim.AdamW(twin.parameters(), **hp)
    t = torch.from_numpy
    for k in range(5):
        src, tgt_in, targets, src_mask, tgt_mask = make_batch(k, True, holes=False)
        opt.zero_grad()
        logits = ours.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
        loss, dlogits = ff.cross_entropy(logits, targets)
        ours.backward(dlogits)
        opt.step()
        t_opt.zero_grad()
        t_logits = twin(t(src), t(tgt_in), t(src_mask), t(tgt_mask))
        t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, SIZES["tgt_vocab_size"]),
                                                   t(targets).reshape(-1), ignore_index=-100)
        t_loss.backward()
        t_opt.step()
        assert abs(loss - t_loss.item()) <= 1e-4 * abs(t_loss.item()), (k, loss, t_loss.item())
    theirs = {n: v.numpy() for n, v in twin.state_dict().items()}
    d = SIZES["d_model"]
    for n, p in ours.named_parameters():
        mine, expected = p.data, theirs[n]
        if n.endswith("in_proj_bias"):
            # The key bias shifts every score of a query equally, which softmax
            # ignores: its gradient is 0 up to rounding, and Adam scales that noise
            # to steps of up to lr. Bounded by 5 steps of 2 lr; the rest to 1e-4.
            key = np.s_[d:2 * d]
            assert np.abs(mine[key] - expected[key]).max() <= 5 * 2 * hp["lr"], n
            mine, expected = np.delete(mine, key), np.delete(expected, key)
        assert_close(mine, expected, 1e-4, n)


# ----- determinism and the workspace -------------------------------------------------------

@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")
@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_bitwise_identical_for_any_thread_count(threads, compute_dtype):
    config = dict(SIZES, src_vocab_size=50, tgt_vocab_size=60, d_model=64, nhead=4,
                  dim_feedforward=128, dropout=0.1, max_len=64, compute_dtype=compute_dtype)
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(0, 50, (4, 40)), rng.integers(0, 60, (4, 33))
    src_mask = np.arange(40)[None, :] >= np.array([40, 30, 7, 21])[:, None]
    targets = np.where(rng.random((4, 33)) < 0.2, -100, rng.integers(0, 60, (4, 33)))
    results = []
    for n in (1, 2, 3):
        threads(n)
        model = ff.Transformer(**config)
        logits = model.forward(src, tgt, src_key_padding_mask=src_mask)
        model.backward(np.cos(logits))
        fused = ff.Transformer(**config)
        fused.LOSS_CHUNK_ROWS = 48  # three chunks
        loss = fused.forward_backward(src, tgt, targets, src_key_padding_mask=src_mask, label_smoothing=0.1)
        results.append((logits, model.flat_parameters()[1].copy(), loss, fused.flat_parameters()[1].copy()))
    for logits, grads, loss, fused_grads in results[1:]:
        np.testing.assert_array_equal(logits, results[0][0])
        np.testing.assert_array_equal(grads, results[0][1])
        assert loss == results[0][2]
        np.testing.assert_array_equal(fused_grads, results[0][3])


def test_workspace_reuse_gives_the_results_of_a_fresh_model():
    big, small = make_batch(1, True, b=5, s=9, t=8), make_batch(2, True, b=2, s=4, t=3)
    config = dict(norm_first=True, activation="gelu", dropout=0.2)
    reused, _ = pair(**config)
    # grow, reuse the front, back to the big plan (cached), and the small one again
    for batch in (small, big, small, big, small):
        rng_step = reused.rng_step
        fresh, _ = pair(**config)
        fresh.rng_step = rng_step
        a, b = step(reused, batch), step(fresh, batch)
        np.testing.assert_array_equal(a[0], b[0])
        for n in a[1]:
            np.testing.assert_array_equal(a[1][n], b[1][n], err_msg=n)


def test_forward_returns_a_new_array():
    ours, _ = pair()
    batch = make_batch(0, False)
    a = ours.forward(*batch[:2])
    b = ours.forward(*batch[:2])
    assert a is not b and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", ["compiled", "reference"])
def test_forward_into_out(which):
    """forward(out=) writes the logits there (the trainer's reused buffer):
    the bits of a new array, the same backward, and clear errors."""
    models = pair()
    model = models[0] if which == "compiled" else models[1]
    batch = make_batch(0, True)
    src, tgt_in, _, src_mask, tgt_mask = batch
    logits, grads = step(model, batch)
    out = np.full_like(logits, np.nan)
    model.zero_grad()
    got = model.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask, out=out)
    assert got is out
    np.testing.assert_array_equal(out, logits)
    _, dlogits = ff.reference.cross_entropy(logits, batch[2], label_smoothing=0.1)
    model.backward(dlogits)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[name], err_msg=name)
    for bad, error, match in [(logits.astype(np.float64), TypeError, "dtype"),
                              (logits[:, :-1].copy(), ValueError, "shape"),
                              (np.asfortranarray(logits), ValueError, "C-contiguous"),
                              (logits.tolist(), TypeError, "out"),
                              (np.broadcast_to(logits[:1], logits.shape), ValueError, "writeable"),
                              (np.frombuffer(bytearray(logits.nbytes + 1), np.uint8)[1:].view(np.float32)
                               .reshape(logits.shape), ValueError, "aligned"),
                              (model._flat_grad[:logits.size].reshape(logits.shape), ValueError, "overlap")]:
        with pytest.raises(error, match=match):
            model.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask, out=bad)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("options", [dict(), dict(label_smoothing=0.1), dict(normalizer=50),
                                     dict(label_smoothing=0.2, ignore_index=3)])
def test_forward_backward_is_forward_loss_backward(compute_dtype, options):
    """The fused step (generator, loss and its backward LOSS_CHUNK_ROWS rows at
    a time, no (B, T, V) logits) gives the bits of forward, ops.cross_entropy
    and backward, chunks of any size; the reference's equals its own three."""
    batch = make_batch(1, True, b=5, t=9)
    src, tgt_in, targets, src_mask, tgt_mask = batch
    ce = {k: v for k, v in options.items() if k != "ignore_index"}
    ignore = options.get("ignore_index", -100)
    targets = np.where(targets == -100, ignore, targets)  # the padding's targets: ignored
    for chunk in (7, 16, 512):  # 45 rows: 7 chunks with a short last one, 3, 1
        fused, plain = (pair(dropout=0.1, compute_dtype=compute_dtype)[0] for _ in range(2))
        fused.LOSS_CHUNK_ROWS = plain.LOSS_CHUNK_ROWS = chunk
        fused.zero_grad(), plain.zero_grad()
        loss = fused.forward_backward(src, tgt_in, targets, src_key_padding_mask=src_mask,
                                      tgt_key_padding_mask=tgt_mask, ignore_index=ignore, **ce)
        logits = plain.forward(src, tgt_in, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
        expected, dlogits = ff.ops.cross_entropy(logits, targets, ignore, out=logits, **ce)
        plain.backward(dlogits)
        assert loss == expected and fused.rng_step == plain.rng_step == 1
        for (name, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=f"{name}, chunks of {chunk}")
        with pytest.raises(RuntimeError, match="forward"):
            fused.backward(dlogits)  # nothing left pending
    ours, ref = pair(compute_dtype=compute_dtype)
    ref64 = R.Transformer(**{**SIZES, "dropout": 0.0, "max_len": 32, "compute_dtype": compute_dtype},
                          dtype=np.float64)
    ref64.load_state_dict(ours.state_dict())
    ours.zero_grad(), ref64.zero_grad()
    args = (src, tgt_in, targets, src_mask, tgt_mask)
    loss, loss64 = (m.forward_backward(*args, ignore_index=ignore, **ce) for m in (ours, ref64))
    assert abs(loss - loss64) <= 1e-5 * abs(loss64)
    for (name, p), (_, q) in zip(ours.named_parameters(), ref64.named_parameters()):
        assert_close(p.grad, q.grad, 2e-4 if compute_dtype == "float32" else 2e-2, name)


@pytest.mark.parametrize("model", [0, 1], ids=["compiled", "reference"])
def test_forward_backward_bad_input_and_empty_targets(model):
    m = pair()[model]
    src, tgt_in, targets, src_mask, tgt_mask = make_batch(0, True)
    for kwargs, error, match in [
            (dict(targets=targets.astype(np.float32)), TypeError, "targets must be an integer"),
            (dict(targets=targets[:, :-1]), ValueError, "targets must have tgt_in's shape"),
            (dict(targets=targets + 13), ValueError, r"targets must be in \[0, 13\)"),
            (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
            (dict(normalizer=0), ValueError, "normalizer must be a positive"),
            (dict(normalizer=float("inf")), ValueError, "normalizer must be a positive"),
            (dict(tgt_in=tgt_in[:2]), ValueError, "batch size"),
            (dict(ignore_index=2 ** 70), ValueError, "ignore_index must be a 64-bit integer")]:
        args = dict(src=src, tgt_in=tgt_in, targets=targets, src_key_padding_mask=src_mask,
                    tgt_key_padding_mask=tgt_mask)
        args.update(kwargs)
        with pytest.raises(error, match=match):
            m.forward_backward(**args)
    none = np.full_like(targets, -100)
    m.zero_grad()
    assert np.isnan(m.forward_backward(src, tgt_in, none))  # the mean over no target, as cross_entropy
    assert m.forward_backward(src, tgt_in, none, normalizer=4) == 0.0  # a share of a step's mean: nothing
    assert all(not np.any(p.grad) for _, p in m.named_parameters())


# ----- the shared layout ------------------------------------------------------------------

def test_layout_and_initialisation_are_the_reference_ones():
    config = dict(SIZES, tie_embeddings=True, final_norm=False, seed=4)
    ours, ref = ff.Transformer(**config), R.Transformer(**config)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for n, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[n], v, err_msg=n)
    assert ours.config() == ref.config() and ours.config()["seed"] == 4
    data, grad = ours.flat_parameters()
    assert data.dtype == grad.dtype == np.float32 and data.shape == grad.shape
    for _, p in ours.named_parameters():
        assert np.shares_memory(p.data, data) and np.shares_memory(p.grad, grad)
    assert ref.flat_parameters()[0] is ref._flat


def test_optimizer_and_checkpoint_see_the_flat_buffers(tmp_path):
    ours, _ = pair()
    step(ours, make_batch(0, False))
    before = ours.flat_parameters()[0].copy()
    ff.optim.SGD(ours, lr=0.1).step()
    assert not np.array_equal(before, ours.flat_parameters()[0])
    from fastformer.checkpoint import model_from_checkpoint, save_checkpoint
    save_checkpoint(tmp_path, ours)
    loaded, _ = model_from_checkpoint(tmp_path, ff.Transformer)
    np.testing.assert_array_equal(loaded.flat_parameters()[0], ours.flat_parameters()[0])


# ----- input checks ----------------------------------------------------------------------

def test_bad_input():
    ours, _ = pair()
    src, tgt, _, src_mask, tgt_mask = make_batch(0, True)
    with pytest.raises(RuntimeError, match="forward"):
        ours.backward(np.zeros((B, T, 13), np.float32))
    cases = [
        (dict(src=src.astype(np.float32)), TypeError, "src"),
        (dict(tgt_in=tgt.astype(np.float64)), TypeError, "tgt_in"),
        (dict(src=src[0]), ValueError, "src"),
        (dict(src=src + 11), ValueError, "src"),
        (dict(tgt_in=-tgt - 1), ValueError, "tgt_in"),
        (dict(tgt_in=np.zeros((B, 40), np.int64)), ValueError, "max_len"),
        (dict(src=src[:2]), ValueError, "batch size"),
        (dict(src_key_padding_mask=src_mask.astype(np.int64)), TypeError, "src_key_padding_mask"),
        (dict(src_key_padding_mask=src_mask[:, :3]), ValueError, "src_key_padding_mask"),
        (dict(tgt_key_padding_mask=tgt_mask.T), ValueError, "tgt_key_padding_mask"),
    ]
    for change, error, match in cases:
        kwargs = dict(src=src, tgt_in=tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
        kwargs.update(change)
        with pytest.raises(error, match=match):
            ours.forward(**kwargs)
    logits = ours.forward(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    with pytest.raises(ValueError, match="dlogits"):
        ours.backward(logits[:, :-1])
    with pytest.raises(TypeError, match="dlogits"):
        ours.backward(logits.astype(np.int32))
    ours.backward(logits.astype(np.float64))  # any float dtype, as the reference
    with pytest.raises(RuntimeError, match="forward"):
        ours.backward(logits)  # one backward per forward


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(d_model=10, nhead=3), ValueError, "nhead"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(activation="tanh"), ValueError, "activation"),
    (dict(num_encoder_layers=-1), ValueError, "num_encoder_layers"),
    (dict(max_len=0), ValueError, "max_len"),
    (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps"),
])
def test_constructor_checks(kwargs, error, name):
    with pytest.raises(error, match=name):
        ff.Transformer(**{**SIZES, **kwargs})
    with pytest.raises(TypeError):
        ff.Transformer(**SIZES, dtype=np.float64)  # float32 only


def test_kernel_out_arguments_the_model_relies_on():
    """The backward ops' one gradient convention, as the twins': out= (and
    LayerNorm's dweight=, dbias=) is written, with accumulate=True added to
    (the model's gradient buffers); the out= of layer_norm and the
    activations write in place, and agree with the twins."""
    rng = np.random.default_rng(0)
    dx, ids = rng.standard_normal((2, 5, 8)).astype(np.float32), rng.integers(0, 4, (2, 5))
    start = rng.standard_normal((6, 8)).astype(np.float32)
    fresh = ff.ops.embedding_backward(dx, ids, 6)
    for accumulate in (False, True):
        ours, ref = start.copy(), start.copy()
        assert ff.ops.embedding_backward(dx, ids, 6, out=ours, accumulate=accumulate) is ours
        R.embedding_backward(dx, ids, 6, out=ref, accumulate=accumulate)
        np.testing.assert_array_equal(ours, ref)
        np.testing.assert_allclose(ours, start + fresh if accumulate else fresh, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ours[4:], start[4:] if accumulate else 0)  # rows no token uses
    for module in (ff.ops, R):
        with pytest.raises(ValueError, match="accumulate=True needs out="):
            module.embedding_backward(dx, ids, 6, accumulate=True)
    with pytest.raises(ValueError, match="out must not overlap dx"):
        ff.ops.embedding_backward(dx, ids, 6, out=dx.reshape(10, 8)[:6], accumulate=True)
    x, dy, r = (rng.standard_normal((5, 8)).astype(np.float32) for _ in range(3))
    w = rng.standard_normal(8).astype(np.float32)
    _, mean, rstd = ff.ops.layer_norm_forward(x, w, w, 1e-5, r)
    dx_new, dw_new, db_new = ff.ops.layer_norm_backward(dy, x, w, mean, rstd, r)
    for accumulate in (False, True):
        gw, gb = np.ones(8, np.float32), np.full(8, 2.0, np.float32)
        got = ff.ops.layer_norm_backward(dy, x, w, mean, rstd, r, dweight=gw, dbias=gb, accumulate=accumulate)
        assert got[1] is gw and got[2] is gb
        np.testing.assert_array_equal(got[0], dx_new)
        np.testing.assert_array_equal(gw, np.float32(1) + dw_new if accumulate else dw_new)  # the bits of an add
        np.testing.assert_array_equal(gb, np.float32(2) + db_new if accumulate else db_new)
        rw, rb = np.ones(8), np.full(8, 2.0)
        R.layer_norm_backward(*(a.astype(np.float64) for a in (dy, x, w, mean, rstd, r)), dweight=rw, dbias=rb,
                              accumulate=accumulate)
        np.testing.assert_allclose(gw, rw, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gb, rb, rtol=1e-5, atol=1e-5)
    for module in (ff.ops, R):
        with pytest.raises(ValueError, match="accumulate=True needs dweight="):
            module.layer_norm_backward(dy, x, w, mean, rstd, r, dbias=gb, accumulate=True)
    for kwargs, match in [(dict(dweight=gw, dbias=gw), "dweight must not overlap dbias"),
                          (dict(dweight=w, dbias=gb), "dweight must not overlap weight"),
                          (dict(dweight=np.ones(7, np.float32)), "dweight must have shape"),
                          (dict(dbias=np.ones(8)), "dbias must have dtype float32")]:
        with pytest.raises((ValueError, TypeError), match=match):
            ff.ops.layer_norm_backward(dy, x, w, mean, rstd, r, **kwargs)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((5, 8), (8,), (8,)))
    y, mean, rstd = np.empty((5, 8), np.float32), np.empty(5, np.float32), np.empty(5, np.float32)
    got = ff.ops.layer_norm_forward(x, w, b, 1e-5, x[::-1].copy(), out=y, out_mean=mean, out_rstd=rstd)
    assert got[0] is y and got[1] is mean and got[2] is rstd
    for a, e in zip(got, R.layer_norm_forward(x, w, b, 1e-5, x[::-1].copy())):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
    g = x.copy()
    assert ff.ops.relu_backward(g, w[None].repeat(5, 0), out=g) is g
    np.testing.assert_array_equal(g, R.relu_backward(x, w[None].repeat(5, 0)))
