"""Token-budget training batches: never over budget, every pair once per
epoch, reshuffled per epoch, a pure function of (seed, step)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastformer.data import TokenBudgetBatches, fixed_budget_batches
from fastformer.data.corpus import _offsets
from fastformer.data.token_budget import cut_by_budget, example_costs


class ArrayCorpus:
    """Pairs of given lengths whose ids say who they are: pair i is all i+3 (source) and i+4 (target)."""

    def __init__(self, src_lengths, tgt_lengths):
        self.src_offsets, self.tgt_offsets = _offsets(src_lengths), _offsets(tgt_lengths)
        self.src_ids = np.repeat(np.arange(len(src_lengths)) + 3, src_lengths)
        self.tgt_ids = np.repeat(np.arange(len(tgt_lengths)) + 4, tgt_lengths)
        self.source_lengths = np.asarray(src_lengths, dtype=np.int64)
        self.target_lengths = np.asarray(tgt_lengths, dtype=np.int64)

    def __len__(self):
        return len(self.source_lengths)

    def source(self, i):
        return self.src_ids[self.src_offsets[i]:self.src_offsets[i + 1]]

    def target(self, i):
        return self.tgt_ids[self.tgt_offsets[i]:self.tgt_offsets[i + 1]]


def random_corpus(n, seed=0, hi=30):
    rng = np.random.default_rng(seed)
    return ArrayCorpus(rng.integers(1, hi, n), rng.integers(1, hi, n))


def who(batch):
    """The pair indices in a batch, read back from its target ids."""
    return sorted(int(row[0]) - 4 for row in batch.tgt_out)


def cost(batch):
    return batch.src.size + batch.tgt_in.size


# Sources may be empty (a batch still gets one position); targets have a token to say whose they are.
lengths = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 40)), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(lengths, st.integers(0, 200), st.integers(0, 2**31 - 1), st.none() | st.integers(1, 9))
def test_budget_never_exceeded_and_every_pair_once_per_epoch(pairs, extra, seed, max_batch):
    src, tgt = map(list, zip(*pairs))
    corpus = ArrayCorpus(src, tgt)
    s, t = example_costs(src, tgt)
    max_tokens = int((s + t).max()) + extra
    batches = TokenBudgetBatches(corpus, max_tokens, seed=seed, max_batch=max_batch)
    n = batches.batches_per_epoch
    shapes = None
    for epoch in range(2):
        seen = []
        epoch_shapes = []
        for k in range(epoch * n, (epoch + 1) * n):
            batch = batches.get_batch(k)
            assert cost(batch) <= max_tokens
            assert max_batch is None or len(batch) <= max_batch
            assert len(batch) <= batches.batch_size
            assert who(batch) == sorted(batches.batch_indices(k).tolist())
            seen += who(batch)
            epoch_shapes.append((batch.src.shape, batch.tgt_in.shape))
        assert sorted(seen) == list(range(len(pairs)))
        assert shapes is None or sorted(shapes) == sorted(epoch_shapes)  # same cuts every epoch
        shapes = epoch_shapes


@settings(max_examples=60, deadline=None)
@given(lengths, st.integers(0, 100), st.none() | st.integers(1, 5))
def test_cuts_are_greedy(pairs, extra, max_batch):
    """Each batch (but the last) would go over the budget or max_batch with the next pair."""
    s, t = example_costs(*zip(*pairs))
    order = np.lexsort((t, s))
    s, t = s[order], t[order]
    max_tokens = int((s + t).max()) + extra
    bounds = cut_by_budget(s, t, max_tokens, max_batch)
    assert bounds[0] == 0 and bounds[-1] == len(s) and np.all(np.diff(bounds) > 0)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        assert (hi - lo) * (s[lo:hi].max() + t[lo:hi].max()) <= max_tokens
        if hi < len(s):
            grown = (hi + 1 - lo) * (s[lo:hi + 1].max() + t[lo:hi + 1].max())
            assert grown > max_tokens or (max_batch is not None and hi - lo == max_batch)


def test_batches_hold_what_make_batch_builds():
    corpus = ArrayCorpus([3, 0, 5], [2, 4, 1])
    (batch,) = list(TokenBudgetBatches(corpus, 100))
    order = [int(row[0]) - 4 for row in batch.tgt_out]
    for b, i in enumerate(order):
        assert batch.src[b, :corpus.source_lengths[i]].tolist() == corpus.source(i).tolist()
        assert batch.tgt_in[b, 0] == 1 and batch.tgt_out[b, corpus.target_lengths[i]] == 2
    assert batch.src.shape == (3, 5) and batch.tgt_in.shape == (3, 5)
    assert batch.src_key_padding_mask[order.index(1)].all()  # the empty source: one masked position


def test_an_example_over_the_budget():
    corpus = ArrayCorpus([3, 10, 5], [2, 20, 1])
    with pytest.raises(ValueError, match=r"max_tokens 30 is smaller than the longest kept example \(31 tokens"):
        TokenBudgetBatches(corpus, 30)
    assert TokenBudgetBatches(corpus, 31).batches_per_epoch == 2  # the long one alone, 2 * (5 + 3) together
    for bad in (0, -5, 2.5, True, None):
        with pytest.raises(ValueError, match="max_tokens"):
            TokenBudgetBatches(corpus, bad)
    with pytest.raises(ValueError, match="max_batch"):
        TokenBudgetBatches(corpus, 100, max_batch=0)
    with pytest.raises(ValueError, match="no examples"):
        TokenBudgetBatches(corpus, 100, indices=[])


def test_each_epoch_reshuffles():
    corpus = ArrayCorpus(np.full(64, 4), np.full(64, 3))  # all alike: any grouping is as good
    batches = TokenBudgetBatches(corpus, 8 * (4 + 4), seed=1)
    n = batches.batches_per_epoch
    assert n == 8 and batches.batch_size == 8
    groups = [{tuple(who(batches.get_batch(k))) for k in range(e * n, (e + 1) * n)} for e in range(3)]
    assert groups[0] != groups[1] != groups[2] != groups[0]  # which pairs travel together changes
    order = [who(batches.get_batch(k)) for k in range(n)]
    assert order != sorted(order)  # and the batch order is shuffled
    other_seed = TokenBudgetBatches(corpus, 64, seed=2)
    assert {tuple(who(other_seed.get_batch(k))) for k in range(n)} != groups[0]


def test_get_batch_is_a_pure_function_of_seed_and_step():
    corpus = random_corpus(500, seed=3)
    a = TokenBudgetBatches(corpus, 200, seed=7)
    steps = [0, 5, 3 * a.batches_per_epoch + 2, 1, a.batches_per_epoch, 11 * a.batches_per_epoch - 1, 5]
    for k in steps:  # out of order, across epochs, each time from a fresh object (a resumed run)
        fresh = TokenBudgetBatches(corpus, 200, seed=7)
        for x, y in zip(a.get_batch(k), fresh.get_batch(k)):
            np.testing.assert_array_equal(x, y)


def test_little_padding():
    rng = np.random.default_rng(4)
    src = rng.integers(1, 60, 3000)
    corpus = ArrayCorpus(src, np.maximum(1, src + rng.integers(-4, 5, 3000)))  # translations: similar lengths
    batches = TokenBudgetBatches(corpus, 1024, seed=0)
    real = padded = 0
    for batch in batches:
        real += int((~batch.src_key_padding_mask).sum() + (~batch.tgt_key_padding_mask).sum())
        padded += cost(batch)
        assert cost(batch) <= 1024
    assert real / padded > 0.9  # length-sorted batches waste under a tenth of the budget
    assert padded / (batches.batches_per_epoch * 1024) > 0.8  # and fill most of it


def test_a_subset_of_pairs():
    corpus = random_corpus(100, seed=5)
    chosen = np.arange(0, 100, 3)
    batches = TokenBudgetBatches(corpus, 150, indices=chosen)
    assert sorted(sum((who(b) for b in batches), [])) == chosen.tolist()


def test_fixed_budget_batches_keep_every_pair_in_order():
    corpus = ArrayCorpus([3, 50, 5, 1, 2], [2, 60, 1, 1, 3])
    batches = fixed_budget_batches(corpus, 40, indices=[0, 1, 2, 4])
    assert sorted(sum((who(b) for b in batches), [])) == [0, 1, 2, 4]
    assert all(cost(b) <= 40 or len(b) == 1 for b in batches)  # the long pair alone, over budget
    assert [who(b) for b in fixed_budget_batches(corpus, 40, indices=[0, 1, 2, 4])] == [who(b) for b in batches]
    assert sum(len(b) for b in fixed_budget_batches(corpus, 1000)) == 5
