"""Synthetic tasks, the text-file reader, the vocabulary and batching."""
import json

import numpy as np
import pytest

from fastformer.data import (
    IGNORE_INDEX, BucketedBatches, DataFileError, SyntheticTask, TextPairsData, Vocabulary,
    make_batch, read_pairs, target_sequences)


@pytest.mark.parametrize("name", ["copy", "reverse", "sort", "addition"])
def test_tasks_are_correct_and_deterministic(name):
    task = SyntheticTask(name, batch_size=16, seed=3, heldout_size=50)
    again = SyntheticTask(name, batch_size=16, seed=3, heldout_size=50)
    assert task.heldout == again.heldout and len(task.heldout) == 50
    pairs = task.train_pairs(7)
    assert pairs == again.train_pairs(7) and pairs != task.train_pairs(8)
    for src, tgt in pairs + task.heldout:
        if name == "copy":
            assert tgt == src
        elif name == "reverse":
            assert tgt == src[::-1]
        elif name == "sort":
            assert tgt == "".join(sorted(src))
        else:
            a, b = src.split("+")
            assert int(tgt) == int(a) + int(b)
        assert len(src) <= task.max_source_len and len(tgt) <= task.max_target_len
    for x, y in zip(task.get_batch(7), again.get_batch(7)):
        np.testing.assert_array_equal(x, y)


def test_addition_example_format():
    task = SyntheticTask("addition", seed=0, min_len=2, max_len=3)
    for src, tgt in task.train_pairs(0):
        a, b = src.split("+")
        assert 2 <= len(a) <= 3 and 2 <= len(b) <= 3 and a[0] != "0" and b[0] != "0"
        assert tgt == str(int(a) + int(b))


def test_heldout_is_disjoint_from_training():
    # Short sequences over 10 digits: collisions are common, so the filter matters.
    task = SyntheticTask("copy", batch_size=64, seed=0, min_len=1, max_len=2, heldout_size=40)
    heldout = set(task.heldout)
    seen = {pair for step in range(50) for pair in task.train_pairs(step)}
    assert len(heldout) == 40 and not heldout & seen
    other_seed = SyntheticTask("copy", seed=1, min_len=1, max_len=2, heldout_size=40)
    assert other_seed.heldout != task.heldout


def test_batch_layout():
    vocab = Vocabulary("abc")
    b = make_batch([vocab.encode("ab"), vocab.encode("c")], [vocab.encode("cab"), vocab.encode("a")])
    assert b.src.dtype == np.int64 and b.tgt_in.dtype == np.int64 and b.src_key_padding_mask.dtype == bool
    np.testing.assert_array_equal(b.src, [[3, 4], [5, 0]])
    np.testing.assert_array_equal(b.src_key_padding_mask, [[False, False], [False, True]])
    np.testing.assert_array_equal(b.tgt_in, [[1, 5, 3, 4], [1, 3, 0, 0]])
    np.testing.assert_array_equal(b.tgt_out, [[5, 3, 4, 2], [3, 2, IGNORE_INDEX, IGNORE_INDEX]])
    np.testing.assert_array_equal(b.tgt_key_padding_mask, [[False] * 4, [False, False, True, True]])
    assert b.num_tokens == 3 + 6 and len(b) == 2
    assert target_sequences(b.tgt_out) == [[5, 3, 4], [3]]


def test_vocabulary_round_trip(tmp_path):
    vocab = Vocabulary.from_texts(["hello", "wörld\u00e9"])
    assert len(vocab) == 3 + len(set("hellowörldé"))
    ids = vocab.encode("hello")
    assert min(ids) >= 3 and vocab.decode(ids + [2, 5]) == "hello" and vocab.decode([1] + ids + [0]) == "hello"
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("hez")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ValueError, match="not a fastformer character vocabulary"):
        Vocabulary.load(tmp_path / "other.json")


def test_read_pairs(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes("ab\tba\r\n\nabc\tcba\nxyz\tzyx".encode("utf-8"))
    assert read_pairs(path) == [("ab", "ba"), ("abc", "cba"), ("xyz", "zyx")]


@pytest.mark.parametrize("content, message", [
    (b"ab\tba\nno tab here\n", "line 2: expected 'source<TAB>target', found no tab"),
    (b"a\tb\tc\n", "line 1: expected 'source<TAB>target', found 2 tabs"),
    (b"ok\tok\n\tmissing\n", "line 2: the source is empty"),
    (b"ok\t\n", "line 1: the target is empty"),
    (b"ok\tok\n\xff\xfe\tx\n", "line 2: not valid UTF-8"),
    (b"", "holds no 'source<TAB>target' lines"),
    (b"\n  \n", "holds no 'source<TAB>target' lines"),
])
def test_read_pairs_errors(tmp_path, content, message):
    path = tmp_path / "data.tsv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=message):
        read_pairs(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(DataFileError, match="cannot read"):
        read_pairs(tmp_path / "missing.tsv")
    with pytest.raises(DataFileError, match="cannot read"):
        read_pairs(tmp_path)  # a folder


def test_bucketed_batches_are_seeded_and_cover_each_epoch():
    rng = np.random.default_rng(0)
    pairs = [([3] * int(n), [4] * int(m)) for n, m in rng.integers(1, 30, size=(230, 2))]
    batches = BucketedBatches(pairs, batch_size=8, seed=5)
    assert batches.batches_per_epoch == 29  # ceil(230 / 8): one window holds all
    plan0 = batches.epoch_plan(0)
    assert sorted(np.concatenate(plan0).tolist()) == list(range(230))
    assert [p.tolist() for p in plan0] == [p.tolist() for p in BucketedBatches(pairs, 8, seed=5).epoch_plan(0)]
    assert [p.tolist() for p in plan0] != [p.tolist() for p in batches.epoch_plan(1)]
    # Bucketing: batches hold similar lengths, far less padding than random batches.
    lengths = np.array([len(s) + len(t) for s, t in pairs])
    spread = np.mean([np.ptp(lengths[p]) for p in plan0])
    assert spread < 0.5 * np.ptp(lengths)
    b = batches.get_batch(29 + 3)  # epoch 1, batch 3
    assert b.src.shape[0] == len(batches.epoch_plan(1)[3])


def test_text_pairs_data(tmp_path):
    path = tmp_path / "data.tsv"
    lines = [f"{'ab' * (i % 5 + 1)}\t{'ba' * (i % 5 + 1)}" for i in range(40)]
    path.write_text("\n".join(lines))
    data = TextPairsData.from_file(path, batch_size=4, seed=1, heldout_fraction=0.1)
    assert len(data.heldout) == 4 and len(data.train) == 36
    assert data.vocab == Vocabulary("ab") and data.batches_per_epoch == 9
    assert sum(len(b) for b in data.heldout_batches()) == 4
    assert data.config()["name"] == "file"
    with pytest.raises(DataFileError, match="'a' is not in the vocabulary"):
        TextPairsData.from_file(path, vocab=Vocabulary("c"))
