"""Fuzz the Transformer: constructor arguments (mostly small, sometimes
wild), forward with ids, masks and shapes that may not fit, backward, and
generate. Only TypeError, ValueError or MemoryError may come out; where a
forward succeeds, the compiled model must match the NumPy reference with the
same weights (a silent wrong answer is a finding too)."""
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
    ref = ff.reference.Transformer(**config)
    ref.load_state_dict(ours.state_dict())
    if fdp.ConsumeBool():
        ours.eval(), ref.eval()
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
    logits = ours.forward(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    expected = ref.forward(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)
    if not np.allclose(logits, expected, rtol=1e-3, atol=1e-4, equal_nan=True):
        raise AssertionError(f"compiled and reference logits differ by {np.abs(logits - expected).max()}")
    dlogits = np.asarray(np.resize([fdp.ConsumeFloatInRange(-1, 1) for _ in range(16)] or [0.0], logits.shape),
                         dtype=fdp.PickValueInList([np.float32, np.float32, np.float64, np.int64]))
    ours.backward(dlogits)
    ref.backward(dlogits)
    ours_grad, ref_grad = ours.flat_parameters()[1], ref.flat_parameters()[1]
    if not np.allclose(ours_grad, ref_grad, rtol=1e-2, atol=1e-3):
        raise AssertionError(f"compiled and reference gradients differ by {np.abs(ours_grad - ref_grad).max()}")


if __name__ == "__main__":
    run(test_one_input, setup)
