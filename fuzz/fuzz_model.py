"""Fuzz the Transformer: constructor arguments (mostly small, sometimes
wild), forward with ids, masks and shapes that may not fit, backward,
forward_backward with targets and loss options, and generate. Only TypeError, ValueError or MemoryError may come out; where a
forward succeeds, the compiled model must match the NumPy reference with the
same weights (a silent wrong answer is a finding too).

The oracle is the reference in float64. float32 rounding is amplified by the
problem's conditioning (a LayerNorm of a nearly constant row, which dropout
makes of a tiny d_model, multiplies it by up to 1/sqrt(eps) per layer), so
the tolerance grows with the reference's own float32 error on the same input:
a bug is far outside it, an ill-conditioned input no longer looks like one."""
import numpy as np

from _harness import run, scalar, small_int


def draw_config(fdp):
    nhead = fdp.ConsumeIntInRange(1, 3)
    config = dict(src_vocab_size=fdp.ConsumeIntInRange(1, 12), tgt_vocab_size=fdp.ConsumeIntInRange(1, 12),
                  d_model=nhead * fdp.ConsumeIntInRange(1, 4), nhead=nhead,
                  num_encoder_layers=fdp.ConsumeIntInRange(0, 2), num_decoder_layers=fdp.ConsumeIntInRange(0, 2),
                  dim_feedforward=fdp.ConsumeIntInRange(1, 16),
                  dropout=fdp.PickValueInList([0.0, 0.0, 0.1, 0.5]), activation=fdp.PickValueInList(["relu", "gelu"]),
                  norm_first=fdp.ConsumeBool(), final_norm=fdp.ConsumeBool(), tie_embeddings=fdp.ConsumeBool(),
                  max_len=fdp.ConsumeIntInRange(1, 10), seed=fdp.ConsumeIntInRange(0, 2 ** 32))
    if fdp.ConsumeProbability() < 0.1:  # one argument out of its range or of the wrong type
        key = fdp.PickValueInList(sorted(config))
        config[key] = fdp.PickValueInList([small_int(fdp, 0, 3, wild=1.0), scalar(fdp)])
    return config


def draw_ids(fdp, B, L, V):
    ids = np.array([[fdp.ConsumeIntInRange(0, max(V - 1, 0)) for _ in range(L)] for _ in range(B)],
                   dtype=np.int64).reshape(B, L)
    if ids.size and fdp.ConsumeProbability() < 0.05:
        ids.flat[0] = small_int(fdp, -2, V + 2, wild=0.5)
    return ids.astype(fdp.PickValueInList([np.int64, np.int32, np.uint8, np.int16]))


def draw_mask(fdp, B, L):
    if fdp.ConsumeBool():
        return None
    return np.array([[fdp.ConsumeBool() for _ in range(L)] for _ in range(B)], dtype=bool).reshape(B, L)


def setup():
    import fastformer as ff

    return ff


def test_one_input(data, ff):
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    config = draw_config(fdp)
    ours = ff.Transformer(**config)
    refs = ff.reference.Transformer(**config), ff.reference.Transformer(**config, dtype=np.float64)
    for ref in refs:
        ref.load_state_dict(ours.state_dict())
    if fdp.ConsumeBool():
        ours.eval(), [ref.eval() for ref in refs]
    B = fdp.ConsumeIntInRange(0, 4)
    S = fdp.ConsumeIntInRange(0, ours.max_len + 1)
    T = fdp.ConsumeIntInRange(0, ours.max_len + 1)
    src = draw_ids(fdp, B, S, ours.src_vocab_size)
    tgt = draw_ids(fdp, B, T, ours.tgt_vocab_size)
    src_mask, tgt_mask = draw_mask(fdp, B, S), draw_mask(fdp, B, T)
    if fdp.ConsumeProbability() < 0.3:
        beam = fdp.ConsumeIntInRange(0, 3)
        bos, eos = (small_int(fdp, 0, ours.tgt_vocab_size - 1, wild=0.05) for _ in range(2))
        ours.generate(src, small_int(fdp, 1, 12, wild=0.05), bos, eos, beam_size=beam, src_key_padding_mask=src_mask)
        return
    if fdp.ConsumeProbability() < 0.3:  # a training step's one call, with the loss's arguments
        targets = draw_ids(fdp, B, T, ours.tgt_vocab_size).astype(np.int64)
        targets[np.array([fdp.ConsumeProbability() < 0.3 for _ in range(targets.size)], bool).reshape(B, T)] = -100
        options = dict(label_smoothing=fdp.PickValueInList([0.0, 0.1, 1.0, 1.5]),
                       normalizer=fdp.PickValueInList([None, None, 3, 0.5, 0]))
        losses = [model.forward_backward(src, tgt, targets, src_key_padding_mask=src_mask,
                                         tgt_key_padding_mask=tgt_mask, **options) for model in (ours, *refs)]
        check_close("loss", *(np.float64(loss) for loss in losses), rtol=1e-3, atol=1e-4)
        check_gradients(ours, refs)
        return
    logits = ours.forward(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    expected = [ref.forward(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask) for ref in refs]
    check_close("logits", logits, *expected, rtol=1e-3, atol=1e-4)
    dlogits = np.asarray(np.resize([fdp.ConsumeFloatInRange(-1, 1) for _ in range(16)] or [0.0], logits.shape),
                         dtype=fdp.PickValueInList([np.float32, np.float32, np.float64, np.int64]))
    for model in (ours, *refs):
        model.backward(dlogits)
    check_gradients(ours, refs)


def check_gradients(ours, refs):
    for (name, p), *twins in zip(ours.named_parameters(), *(ref.named_parameters() for ref in refs)):
        check_close(f"the gradient of {name}", p.grad, *(q.grad for _, q in twins), rtol=1e-2, atol=1e-3)


def check_close(what, ours, ref32, ref64, rtol, atol):
    """ours against the float64 reference, atol widened by ten times the
    reference's own float32 error (the input's conditioning made visible)."""
    noise = np.abs(ref32.astype(np.float64) - ref64)
    noise = float(noise[np.isfinite(noise)].max(initial=0.0))
    tolerance = atol + 10 * noise
    if not np.allclose(ours, ref64, rtol=rtol, atol=tolerance, equal_nan=True):
        raise AssertionError(f"compiled and reference {what} differ by {np.abs(ours - ref64).max()} "
                             f"(tolerance {tolerance}, the reference's float32 error {noise})")

if __name__ == "__main__":
    run(test_one_input, setup)
