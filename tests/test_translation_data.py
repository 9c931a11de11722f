"""TranslationData: hold-out or a validation file, token-budget batches,
the config that rebuilds it on resume, and training with the Trainer."""
import json

import numpy as np
import pytest

import fastformer as ff
from fastformer.data import DataFileError, TranslationData, Vocabulary
from fastformer.data.batch import target_sequences
from fastformer.optim import AdamW, WarmupCosineSchedule
from fastformer.trainer import Trainer

VOCAB = Vocabulary("abcdefghij xyz")


def random_pairs(n, seed=0, lo=1, hi=14):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(list("abcdefghij"), rng.integers(lo, hi)))
        out.append((s, s[::-1] + "z"))
    return out


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture
def train_tsv(tmp_path):
    return write_tsv(tmp_path / "train.tsv", random_pairs(400))


def assert_same_batches(a, b, steps):
    for k in steps:
        for x, y in zip(a.get_batch(k), b.get_batch(k)):
            np.testing.assert_array_equal(x, y)


def test_seeded_holdout(train_tsv):
    pairs = random_pairs(400)
    data = TranslationData(VOCAB, train_tsv, max_tokens=200, max_len=12, seed=3)
    kept = [i for i, (s, t) in enumerate(pairs) if len(s) <= 12 and len(t) + 1 <= 12]
    assert data.report.kept == len(kept) and data.report.too_long == 400 - len(kept)
    assert len(data.valid_sources) == round(0.05 * len(kept))
    held_lines = data.valid.lines[data.valid_indices]
    assert data.valid_sources == [pairs[n - 1][0] for n in held_lines]
    assert data.valid_references == [pairs[n - 1][1] for n in held_lines]
    assert np.intersect1d(data.train_indices, data.valid_indices).size == 0
    assert len(data.train_indices) + len(data.valid_indices) == len(kept)
    seen = np.concatenate([data.batches.batch_indices(k) for k in range(data.batches_per_epoch)])
    assert sorted(seen.tolist()) == data.train_indices.tolist()
    batches = data.heldout_batches()
    assert sum(len(b) for b in batches) == len(data.valid_sources)
    assert all(b.src.size + b.tgt_in.size <= 200 for b in batches)
    references = sorted(VOCAB.decode(t + [VOCAB.eos_id]) for b in batches for t in target_sequences(b.tgt_out))
    assert references == sorted(data.valid_references)
    assert data.max_source_len == 10 and data.max_target_len == 11  # the target has a "z" more
    other = TranslationData(VOCAB, train_tsv, max_tokens=200, max_len=12, seed=4)
    assert other.valid_sources != data.valid_sources
    assert len(TranslationData(VOCAB, train_tsv, max_tokens=200, max_heldout=3).valid_sources) == 3
    none = TranslationData(VOCAB, train_tsv, max_tokens=200, heldout_fraction=0.0)
    assert none.valid_sources == [] and none.heldout_batches() == [] and len(none.train_indices) == 400


def test_validation_file_is_not_length_filtered(tmp_path, train_tsv):
    long = "abcdefghij" * 3
    valid = tmp_path / "valid.tsv"
    valid.write_text(f"ab\tbaz\n{long}\t{long[::-1]}\n\ncd\t\nefg\tgfez\n", encoding="utf-8")
    data = TranslationData(VOCAB, train_tsv, valid=valid, max_tokens=64, max_len=12)
    assert data.valid_sources == ["ab", long, "efg"]
    assert data.valid_references == ["baz", long[::-1], "gfez"]
    assert data.valid_report.empty == 2 and data.valid_report.kept == 3  # the blank line, the empty target
    assert data.valid_over_max_len == 1 and "1 validation pairs are longer than 12 tokens; kept" in data.describe()
    assert data.max_source_len == 30 and data.max_target_len == 30
    assert len(data.train_indices) == data.report.kept  # nothing held out of the training file
    batches = data.heldout_batches()
    assert sorted(len(b) for b in batches) == [1, 2] and max(b.src.size + b.tgt_in.size for b in batches) == 61
    assert sum(len(b) for b in data.heldout_batches(max_tokens=10)) == 3


def test_validation_as_parallel_files(tmp_path, train_tsv):
    (tmp_path / "v.src").write_text("ab\nefg\n")
    (tmp_path / "v.tgt").write_text("baz\ngfez\n")
    data = TranslationData(VOCAB, train_tsv, valid=(tmp_path / "v.src", tmp_path / "v.tgt"), max_tokens=64)
    assert (data.valid_sources, data.valid_references) == (["ab", "efg"], ["baz", "gfez"])
    assert data.config()["valid"] == [str(tmp_path / "v.src"), str(tmp_path / "v.tgt")]


@pytest.mark.parametrize("content, message", [
    ("ab\tba\nabba\n", r"valid\.tsv, line 2: expected 'source<TAB>target', found no tab"),
    ("ab\tbaQ\n", r"valid\.tsv, line 1: character 'Q' is not in the vocabulary"),
    (b"ab\tba\n\xff\n", r"valid\.tsv, line 2: not valid UTF-8"),
    ("", r"valid\.tsv: the data file is empty"),
])
def test_bad_validation_file(tmp_path, train_tsv, content, message):
    valid = tmp_path / "valid.tsv"
    valid.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFileError, match=message):
        TranslationData(VOCAB, train_tsv, valid=valid)


def test_nothing_left_after_filtering(train_tsv):
    with pytest.raises(DataFileError, match=r"no training pairs are left after filtering \(.*train\.tsv: 400 lines"):
        TranslationData(VOCAB, train_tsv, max_len=2)


def test_max_tokens_below_the_longest_example(train_tsv):
    with pytest.raises(ValueError, match=r"max_tokens 20 is smaller than the longest kept example \(22 tokens"):
        TranslationData(VOCAB, train_tsv, max_tokens=20, max_len=12)


def test_config_rebuilds_the_same_data(tmp_path, train_tsv, monkeypatch):
    valid = write_tsv(tmp_path / "valid.tsv", random_pairs(20, seed=9))
    monkeypatch.chdir(tmp_path)
    data = TranslationData(VOCAB, "train.tsv", valid="valid.tsv", max_tokens=100, max_len=12, max_ratio=3,
                           seed=5, max_batch=7, cache_dir=tmp_path / "cache")
    config = json.loads(json.dumps(data.config()))  # as the manifest stores it
    assert config["data"] == str(train_tsv) and config["valid"] == str(valid)
    assert (config["max_tokens"], config["max_len"], config["max_ratio"], config["seed"]) == (100, 12, 3, 5)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = TranslationData.from_config(config, VOCAB, cache_dir=tmp_path / "cache")
    assert again.cache_status == "hit" and again.config() == config
    assert (again.valid_sources, again.valid_references) == (data.valid_sources, data.valid_references)
    n = data.batches_per_epoch
    assert again.batches_per_epoch == n and again.max_batch_pairs == data.max_batch_pairs <= 7
    assert_same_batches(data, again, [0, 1, n - 1, n, 5 * n + 3])
    train_tsv.write_text(train_tsv.read_text() + "ab\tbaz\n")
    with pytest.raises(DataFileError, match=r"train\.tsv: the training data changed since the checkpoint"):
        TranslationData.from_config(config, VOCAB)
    with pytest.raises(ValueError, match="not a 'corpus' data config"):
        TranslationData.from_config({"name": "reverse"}, VOCAB)


def test_parallel_training_files(tmp_path):
    pairs = random_pairs(100, seed=2)
    (tmp_path / "t.src").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "t.tgt").write_text("".join(t + "\n" for _, t in pairs))
    data = TranslationData(VOCAB, src=tmp_path / "t.src", tgt=tmp_path / "t.tgt", max_tokens=90, seed=1)
    tsv = TranslationData(VOCAB, write_tsv(tmp_path / "t.tsv", pairs), max_tokens=90, seed=1)
    assert data.config()["data"] == [str(tmp_path / "t.src"), str(tmp_path / "t.tgt")]
    assert_same_batches(data, tsv, range(0, 3 * data.batches_per_epoch, 5))
    assert data.valid_sources == tsv.valid_sources
    again = TranslationData.from_config(data.config(), VOCAB)
    assert_same_batches(data, again, range(0, 3 * data.batches_per_epoch, 5))


def make_trainer(vocab, max_len):
    model = ff.reference.Transformer(len(vocab), len(vocab), d_model=16, nhead=2, num_encoder_layers=1,
                                     num_decoder_layers=1, dim_feedforward=32, dropout=0.1, max_len=max_len,
                                     seed=3)
    opt = AdamW(model, lr=1e-2, weight_decay=0.01)
    return Trainer(model, opt, schedule=WarmupCosineSchedule(1e-2, warmup=2, total_steps=8), clip_grad_norm=1.0,
                   progress=False, log_every=1)


def test_trainer_resumes_bitwise_across_epochs(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", random_pairs(40, seed=1, hi=8))
    data = TranslationData(VOCAB, path, max_tokens=120, seed=2, cache_dir=tmp_path / "cache")
    assert 2 <= data.batches_per_epoch <= 4  # 8 steps cross an epoch boundary
    max_len = max(data.max_source_len, data.max_target_len + 1)
    straight = make_trainer(VOCAB, max_len)
    straight.fit(data, steps=8)
    first = make_trainer(VOCAB, max_len)
    first.fit(data, steps=3, checkpoint_dir=tmp_path / "ck", eval_data=data)
    saved = first.task
    assert saved == data.config()
    rebuilt = TranslationData.from_config(saved, VOCAB, cache_dir=tmp_path / "cache")  # as --resume does
    resumed = make_trainer(VOCAB, max_len)
    history = resumed.fit(rebuilt, steps=8, checkpoint_dir=tmp_path / "ck", resume=True, eval_data=rebuilt)
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    assert history[-1]["eval_examples"] == len(data.valid_sources) == 2


@pytest.mark.parametrize("kw, message", [({"max_tokens": 0}, "max_tokens"), ({"max_batch": 0}, "max_batch"),
                                         ({"max_len": 1}, "max_len"), ({"heldout_fraction": 1.0}, "heldout"),
                                         ({"max_heldout": -1}, "max_heldout")])
def test_bad_settings_before_reading(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        TranslationData(VOCAB, tmp_path / "not-read.tsv", **kw)
