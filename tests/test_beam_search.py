"""Beam search and sampling: the step kernel (`ops.beam_topk`) against its
NumPy twin, the compiled search against
the NumPy reference search token for token and score for score on a model
trained here (a few seconds, on reversing digit strings), sampling's
determinism, and the options' checks."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R
from fastformer.data.vocab import BOS_ID, EOS_ID
from fastformer.decoding import hypotheses_uncached
from fastformer.model.generate import generate_hypotheses
from fastformer.search_options import search_options
from tiny_training import reverse_task, train_reverse


# ----- kernels against their twins ----------------------------------------------------------

@pytest.mark.parametrize("B,K,V,n", [(1, 1, 7, 2), (3, 4, 37, 8), (2, 5, 64, 10), (7, 2, 129, 3), (2, 3, 5, 20)])
def test_beam_topk_matches_twin(simd, threads, B, K, V, n):
    rng = np.random.default_rng(B * 100 + V)
    logits = (3 * rng.standard_normal((B * K, V))).astype(np.float32)
    logits[0, 1] = logits[0, 2]  # an exact tie within a row: the lower index first
    scores = rng.standard_normal((B, K)).astype(np.float32)
    scores[-1, 1:] = -np.inf  # dead beams: no candidates
    for blocked in (-1, V // 2):
        results = []
        for n_threads in (1, 2, 3):
            threads(n_threads)
            results.append(ff.ops.beam_topk(logits, scores, n, blocked))
        for index, score in results[1:]:  # bitwise for any thread count
            np.testing.assert_array_equal(index, results[0][0])
            np.testing.assert_array_equal(score, results[0][1])
        index, score = results[0]
        want_index, want_score = R.beam_topk(logits.astype(np.float64), scores, n, blocked)
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_allclose(score, want_score, rtol=1e-5, atol=1e-5)
        assert not np.any((index % V == blocked) & (index >= 0))


def test_beam_topk_bad_arguments():
    logits, scores = np.zeros((6, 5), np.float32), np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="logits"):
        ff.ops.beam_topk(logits.astype(np.float64), scores, 2)
    with pytest.raises(ValueError, match="logits"):
        ff.ops.beam_topk(logits[:5], scores, 2)
    with pytest.raises(ValueError, match="n must"):
        ff.ops.beam_topk(logits, scores, 0)
    with pytest.raises(ValueError, match="blocked"):
        ff.ops.beam_topk(logits, scores, 2, blocked=5)


# ----- a small trained model --------------------------------------------------------------

MAX_LEN = 12


@pytest.fixture(scope="module")
def trained():
    """A model half-way through learning to reverse digit strings: confident
    enough to end its outputs, unsure enough for beams to differ."""
    task = reverse_task()
    m = train_reverse(task, 60, MAX_LEN)
    return m, task


def sources(task, n, seed=3):
    rng = np.random.default_rng(seed)
    rows = [task.vocab.encode("".join(str(d) for d in rng.integers(0, 10, rng.integers(2, 9)))) for _ in range(n)]
    S = max(len(r) for r in rows)
    src = np.zeros((n, S), np.int64)
    mask = np.ones((n, S), bool)
    for b, r in enumerate(rows):
        src[b, :len(r)], mask[b, :len(r)] = r, False
    return src, mask


def assert_same_hypotheses(got, want):
    assert len(got.tokens) == len(want.tokens)
    for g_toks, w_toks, g_sc, w_sc in zip(got.tokens, want.tokens, got.scores, want.scores):
        assert [t.tolist() for t in g_toks] == [t.tolist() for t in w_toks]
        np.testing.assert_allclose(g_sc, w_sc, rtol=1e-4, atol=1e-4)


LENGTH_PENALTIES = [dict(length_penalty=0.0), dict(length_penalty=0.6, length_offset=5.0),
                    dict(length_penalty=1.0)]


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("beam", [1, 2, 3, 4, 5])
def test_compiled_equals_reference(trained, batch, beam):
    m, task = trained
    src, mask = sources(task, batch, seed=batch)
    for i, lp in enumerate(LENGTH_PENALTIES):
        opts = dict(lp, num_hypotheses=beam, min_len=2 if i == 1 else 0)
        got = generate_hypotheses(m, src, MAX_LEN, BOS_ID, EOS_ID, beam, mask, **opts)
        want = hypotheses_uncached(m, src, MAX_LEN, BOS_ID, EOS_ID, beam, mask, **opts)
        assert_same_hypotheses(got, want)
        assert all(len(h) == beam for h in got.tokens)  # n-best: beam hypotheses per sentence
        for hyps, scores in zip(got.tokens, got.scores):
            assert scores == sorted(scores, reverse=True)
            assert all(np.count_nonzero(h == EOS_ID) <= 1 and (h[-1] == EOS_ID or len(h) == MAX_LEN) for h in hyps)
            if opts["min_len"]:
                assert all(len(h) > opts["min_len"] for h in hyps)
        np.testing.assert_array_equal(m.generate(src, MAX_LEN, BOS_ID, EOS_ID, beam, mask, **opts),
                                      got.best(EOS_ID))


def test_reference_model_agrees(trained):
    """The reference search over the NumPy model finds what the compiled one does."""
    m, task = trained
    ref = R.Transformer(**{k: getattr(m, k) for k in (
        "src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "num_encoder_layers", "num_decoder_layers",
        "dim_feedforward", "max_len")}, dropout=0.0)
    ref.load_state_dict(m.state_dict())
    src, mask = sources(task, 3, seed=11)
    opts = dict(num_hypotheses=2, length_penalty=0.6, length_offset=5.0)
    assert_same_hypotheses(generate_hypotheses(m, src, MAX_LEN, BOS_ID, EOS_ID, 3, mask, **opts),
                           hypotheses_uncached(ref, src, MAX_LEN, BOS_ID, EOS_ID, 3, mask, **opts))


def test_beams_find_better_scores_than_greedy(trained):
    m, task = trained
    src, mask = sources(task, 7, seed=5)
    greedy = generate_hypotheses(m, src, MAX_LEN, BOS_ID, EOS_ID, 1, mask, length_penalty=0.0)
    beams = generate_hypotheses(m, src, MAX_LEN, BOS_ID, EOS_ID, 4, mask, length_penalty=0.0)
    g, b = np.array(greedy.scores)[:, 0], np.array(beams.scores)[:, 0]
    assert np.all(b >= g - 1e-5) and np.any(b > g + 1e-3)  # non-trivial: beams differ somewhere


# ----- sampling -----------------------------------------------------------------------------

@pytest.mark.parametrize("opts", [dict(seed=1), dict(temperature=0.7, top_k=4, seed=2), dict(top_p=0.8, seed=3),
                                  dict(temperature=1.5, top_k=3, top_p=0.9, seed=4, min_len=3)])
def test_sampling_is_deterministic(trained, threads, opts):
    m, task = trained
    src, mask = sources(task, 7, seed=9)
    runs = []
    for n_threads in (1, 2, 3):
        threads(n_threads)
        runs.append(generate_hypotheses(m, src, MAX_LEN, BOS_ID, EOS_ID, 1, mask, **opts))
    for run in runs[1:]:
        assert [t.tolist() for h in run.tokens for t in h] == [t.tolist() for h in runs[0].tokens for t in h]
        assert run.scores == runs[0].scores
    assert_same_hypotheses(runs[0], hypotheses_uncached(m, src, MAX_LEN, BOS_ID, EOS_ID, 1, mask, **opts))
    if "min_len" in opts:
        assert all(len(h[0]) > opts["min_len"] for h in runs[0].tokens)


def test_sampling_depends_on_the_seed(trained):
    m, task = trained
    src, mask = sources(task, 7, seed=9)
    outs = {m.generate(src, MAX_LEN, BOS_ID, EOS_ID, src_key_padding_mask=mask, temperature=2.0, seed=s).tobytes()
            for s in range(4)}
    assert len(outs) > 1


def test_top_k_one_is_greedy(trained):
    m, task = trained
    src, mask = sources(task, 7, seed=2)
    np.testing.assert_array_equal(m.generate(src, MAX_LEN, BOS_ID, EOS_ID, src_key_padding_mask=mask, top_k=1, seed=5),
                                  m.generate(src, MAX_LEN, BOS_ID, EOS_ID, src_key_padding_mask=mask))


# ----- options ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,name", [
    (dict(beam_size=0), ValueError, "beam_size"),
    (dict(beam_size=2, num_hypotheses=3), ValueError, "num_hypotheses"),
    (dict(num_hypotheses=0), ValueError, "num_hypotheses"),
    (dict(top_p=0.0, seed=1), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(top_k=-1), ValueError, "top_k"),
    (dict(beam_size=2, seed=1), ValueError, "beam_size"),
    (dict(max_len=MAX_LEN + 1), ValueError, "max_len"),
    (dict(min_len=MAX_LEN + 1), ValueError, "min_len"),
    (dict(length_penalty="x"), TypeError, "length_penalty"),
    (dict(length_offset=-1.0), ValueError, "length_offset"),
    (dict(seed=-1), ValueError, "seed"),
])
@pytest.mark.parametrize("cls", [ff.Transformer, R.Transformer])
def test_bad_options(cls, kwargs, error, name):
    m = cls(13, 13, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8,
            max_len=MAX_LEN)
    args = dict(src=np.ones((2, 3), np.int64), max_len=5, bos_id=BOS_ID, eos_id=EOS_ID)
    args.update(kwargs)
    with pytest.raises(error, match=name):
        m.generate(**args)


def test_length_penalty_formula():
    o = search_options(length_penalty=0.6, length_offset=5.0)
    assert o.penalty(7) == pytest.approx(((5 + 7) / 6) ** 0.6)
    assert search_options(length_penalty=1.0).penalty(7) == 7.0  # the average log-probability
    assert search_options(length_penalty=0.0).penalty(7) == 1.0  # the raw sum


# ----- batch shaping ------------------------------------------------------------------------

def test_token_budget_batches():
    from fastformer.data import map_in_batches, token_budget_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, 200)
    lengths[7] = 100  # longer than the budget: a batch of its own
    batches = token_budget_batches(lengths, 64, max_batch=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    longest = [int(lengths[b].max()) for b in batches]
    assert longest == sorted(longest, reverse=True)
    for b in batches:
        assert len(b) <= 16 and (len(b) * max(int(lengths[b].max()), 1) <= 64 or len(b) == 1)
    inputs = [list(range(n)) for n in lengths]
    assert map_in_batches(lambda xs: [len(x) for x in xs], inputs, 64) == lengths.tolist()
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches(lengths, 0)
    with pytest.raises(ValueError, match="outputs"):
        map_in_batches(lambda xs: xs[:1], inputs, 64)


def test_batched_decoding_restores_order(trained):
    """Decoding in token-budget batches gives each input what decoding it alone gives."""
    from fastformer.data import map_in_batches

    m, task = trained
    src, mask = sources(task, 9, seed=4)
    inputs = [row[~pad].tolist() for row, pad in zip(src, mask)]

    def decode(rows):
        S = max(len(r) for r in rows)
        s = np.array([r + [0] * (S - len(r)) for r in rows])
        pad = np.array([[i >= len(r) for i in range(S)] for r in rows])
        return list(m.generate(s, MAX_LEN, BOS_ID, EOS_ID, 3, pad))

    batched = map_in_batches(decode, inputs, max_tokens=20)
    for x, got in zip(inputs, batched):
        alone = decode([x])[0]
        n = min(len(got), len(alone))
        np.testing.assert_array_equal(got[:n], alone[:n])
        assert np.all(got[n:] == EOS_ID) and np.all(alone[n:] == EOS_ID)
