"""Decoding: the compiled model's key/value-cached generate against decoding
without a cache, greedy against beam search with one beam, the reference
model's generate, the result convention and argument checks."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R
from fastformer.decoding import PrefixDecoder, generate_uncached, greedy_decode, greedy_search
from fastformer.reference.beam_search import beam_search
from fastformer.search_options import search_options

V_SRC, V_TGT, B, S = 11, 13, 4, 7
SIZES = dict(src_vocab_size=V_SRC, tgt_vocab_size=V_TGT, d_model=16, nhead=4, num_encoder_layers=2,
             num_decoder_layers=2, dim_feedforward=32, max_len=16, dropout=0.1)
BOS, EOS = 1, 2


def model(cls=ff.Transformer, seed=0, **config):
    """A model with perturbed weights: varied next-token choices (a much larger
    perturbation lets one token win every step, which would test little)."""
    m = cls(**{**SIZES, "seed": seed, **config})
    rng = np.random.default_rng(seed + 1)
    state = {}
    for k, v in m.state_dict().items():
        v = v * (1 + 0.1 * rng.standard_normal(v.shape))
        if v.ndim == 2:
            v += 0.1 * rng.standard_normal(v.shape)
        state[k] = v.astype(np.float32)
    m.load_state_dict(state)
    return m


def source(seed=0, padded=True):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, V_SRC, (B, S))
    mask = np.arange(S)[None, :] >= np.array([S, 5, 3, 6])[:, None] if padded else None
    return src, mask


def check_convention(out, max_len, eos=EOS):
    """(B, L) int64, L <= max_len; after a row's first eos only eos."""
    assert out.dtype == np.int64 and out.ndim == 2 and out.shape[0] == B and 1 <= out.shape[1] <= max_len
    for row in out:
        hits = np.flatnonzero(row == eos)
        if hits.size:
            assert np.all(row[hits[0]:] == eos)


@pytest.mark.parametrize("config", [dict(), dict(norm_first=True, activation="gelu"),
                                    dict(final_norm=False, tie_embeddings=True)])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_equals_uncached(config, beam_size):
    m = model(**config)
    src, mask = source()
    cached = m.generate(src, 12, BOS, EOS, beam_size=beam_size, src_key_padding_mask=mask)
    uncached = generate_uncached(m, src, 12, BOS, EOS, beam_size, mask)
    check_convention(cached, 12)
    np.testing.assert_array_equal(cached, uncached)
    if beam_size == 1:  # and the trainer's fallback loop
        np.testing.assert_array_equal(cached, greedy_decode(m, src, 12, BOS, EOS, mask))


def test_eos_stops_rows_and_pads_them():
    m = model(seed=3)
    src, mask = source(1)
    free = m.generate(src, 10, BOS, 0, src_key_padding_mask=mask)
    eos = int(free[0, 2])  # a token row 0 emits: as eos, row 0 stops at step 3 or before
    out = m.generate(src, 10, BOS, eos, src_key_padding_mask=mask)
    check_convention(out, 10, eos)
    first = np.flatnonzero(out[0] == eos)[0]
    assert first <= 2 and np.all(out[0, :first] == free[0, :first])
    for beam_size in (2, 4):
        beams = m.generate(src, 10, BOS, eos, beam_size=beam_size, src_key_padding_mask=mask)
        check_convention(beams, 10, eos)
        np.testing.assert_array_equal(beams, generate_uncached(m, src, 10, BOS, eos, beam_size, mask))


def test_one_beam_is_greedy():
    m = model(seed=5).eval()
    src, mask = source(2)
    for eos in (EOS, 5, 7):
        greedy = greedy_search(PrefixDecoder(m, src, mask), B, 12, BOS, eos)
        beam = beam_search(PrefixDecoder(m, src, mask), B, 12, BOS, eos, search_options()).best(eos)
        np.testing.assert_array_equal(greedy, beam)


def test_reference_generate_agrees():
    ours = model(seed=2, norm_first=True)
    ref = R.Transformer(**{**SIZES, "seed": 2, "norm_first": True})
    ref.load_state_dict(ours.state_dict())
    src, mask = source(4)
    for beam_size in (1, 2):
        np.testing.assert_array_equal(ours.generate(src, 9, BOS, EOS, beam_size, mask),
                                      ref.generate(src, 9, BOS, EOS, beam_size, mask))


def test_generate_leaves_the_model_as_it_was():
    m = model()
    src, mask = source()
    m.forward(src, src[:, :3])
    step = m.rng_step
    m.generate(src, 5, BOS, EOS, src_key_padding_mask=mask)
    assert m.training and m.rng_step == step
    with pytest.raises(RuntimeError, match="forward"):  # its activations were reused
        m.backward(np.zeros((B, 3, V_TGT), np.float32))
    # max_len is at most the model's positions
    assert m.generate(src, SIZES["max_len"], BOS, V_TGT - 1).shape[1] <= SIZES["max_len"]


@pytest.mark.parametrize("args,error,name", [
    (dict(src=np.zeros((B, S), np.float32)), TypeError, "src"),
    (dict(src=np.full((B, S), V_SRC)), ValueError, "src"),
    (dict(max_len=0), ValueError, "max_len"),
    (dict(max_len=SIZES["max_len"] + 1), ValueError, "max_len"),
    (dict(beam_size=0), ValueError, "beam_size"),
    (dict(bos_id=V_TGT), ValueError, "bos_id"),
    (dict(eos_id=1.5), TypeError, "eos_id"),
    (dict(src_key_padding_mask=np.zeros((B, S - 1), bool)), ValueError, "src_key_padding_mask"),
])
@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_bad_arguments(cls, args, error, name):
    m = cls(**SIZES)
    kwargs = dict(src=source()[0], max_len=5, bos_id=BOS, eos_id=EOS, beam_size=1, src_key_padding_mask=None)
    kwargs.update(args)
    with pytest.raises(error, match=name):
        m.generate(**kwargs)
