"""SentencePiece tokenizers: training, round trips, determinism, bad sizes, checkpoint persistence."""
import json
import os
import re

import numpy as np
import pytest

import fastformer as ff
from fastformer.checkpoint import MANIFEST, read_checkpoint, save_checkpoint
from fastformer.data import SentencePieceTokenizer, Vocabulary, tokenizer_from_manifest, translation_pairs
from fastformer.manifest import check_manifest

PAIRS = translation_pairs(1500, seed=3)
SOURCES = [s for s, _ in PAIRS]
TARGETS = [t for _, t in PAIRS]
VOCAB_SIZE = 120


@pytest.fixture(scope="module")
def tokenizers():
    """Every kind, trained once: {(model_type, joint): tokenizer}."""
    return {(model_type, joint): SentencePieceTokenizer.train(SOURCES, TARGETS, VOCAB_SIZE, model_type=model_type,
                                                              joint=joint)
            for model_type in ("unigram", "bpe") for joint in (False, True)}


@pytest.mark.parametrize("joint", [False, True])
@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_round_trip(tokenizers, model_type, joint):
    tok = tokenizers[model_type, joint]
    assert tok.kind == "sentencepiece" and tok.joint == joint and tok.model_type == model_type
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.src_vocab_size == tok.tgt_vocab_size == VOCAB_SIZE
    for tokens in (tok.src_tokens(), tok.tgt_tokens()):
        assert len(tokens) == VOCAB_SIZE and tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
        assert len(set(tokens)) == VOCAB_SIZE
    assert (tok.src_tokens() == tok.tgt_tokens()) == joint
    assert sorted(tok.model_files()) == (["joint"] if joint else ["source", "target"])
    sources, targets = tok.encode_source_many(SOURCES[:200]), tok.encode_target_many(TARGETS[:200])
    for source, target, src_ids, tgt_ids in zip(SOURCES, TARGETS, sources, targets):
        assert src_ids == tok.encode_source(source) and tgt_ids == tok.encode_target(target)
        assert all(4 <= i < VOCAB_SIZE for i in src_ids + tgt_ids)  # no specials, no unknowns
        assert tok.decode(tgt_ids) == target and tok.decode_source(src_ids) == source
        # decode: bos and pad skipped, stops at the first eos
        assert tok.decode([1] + tgt_ids + [2] + tgt_ids + [0, 0]) == target
    assert tok.decode(np.array([1, 2, 5], dtype=np.int64)) == ""
    # A character the training data never had becomes unk, and decoding still works.
    assert 3 in tok.encode_target("Uhr ✓")


def test_decode_refuses_ids_out_of_range(tokenizers):
    tok = tokenizers["bpe", False]
    with pytest.raises(ValueError, match=r"token id 120 is out of the vocabulary's range \[0, 120\)"):
        tok.decode([5, 120])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode_source(b"bytes")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        tok.encode_target_many(["a", 5])


def test_training_is_deterministic_and_depends_on_the_data(tokenizers):
    for (model_type, joint), tok in tokenizers.items():
        again = SentencePieceTokenizer.train(SOURCES, TARGETS, VOCAB_SIZE, model_type=model_type, joint=joint)
        assert again.model_files() == tok.model_files() and again.fingerprint() == tok.fingerprint()
    other = SentencePieceTokenizer.train(SOURCES[:700], TARGETS[:700], VOCAB_SIZE, model_type="bpe")
    assert other.fingerprint() != tokenizers["bpe", False].fingerprint()
    assert len({tok.fingerprint() for tok in tokenizers.values()}) == 4


def test_training_writes_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    SentencePieceTokenizer.train(SOURCES[:300], TARGETS[:300], 60, model_type="unigram")
    assert os.listdir(tmp_path) == []


def test_large_corpora_are_sampled_with_the_seed():
    a = SentencePieceTokenizer.train(SOURCES, TARGETS, 80, model_type="bpe", max_sentences=300, seed=1)
    b = SentencePieceTokenizer.train(SOURCES, TARGETS, 80, model_type="bpe", max_sentences=300, seed=1)
    c = SentencePieceTokenizer.train(SOURCES, TARGETS, 80, model_type="bpe", max_sentences=300, seed=2)
    full = SentencePieceTokenizer.train(SOURCES, TARGETS, 80, model_type="bpe")
    assert a == b and a.fingerprint() == b.fingerprint()
    assert a != full and a != c  # the sample (seeded) is what it trains on


def test_bad_vocab_size_and_arguments():
    with pytest.raises(ValueError, match=r"vocab_size 100000 is too large for the source data: "
                                         r"it supports at most \d+ \(use vocab_size <= \d+\)"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 100_000)
    with pytest.raises(ValueError, match=r"vocab_size 100000 is too large for the joint data"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 100_000, model_type="bpe", joint=True)
    with pytest.raises(ValueError, match=r"vocab_size 12 is too small for the source data.*vocab_size >= \d+"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 12)
    with pytest.raises(ValueError, match="vocab_size must be larger than the 4 special tokens, got 4"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 4)
    with pytest.raises(TypeError, match="vocab_size must be an integer"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, "8000")
    with pytest.raises(ValueError, match="model_type must be one of"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 100, model_type="word")
    with pytest.raises(ValueError, match="same length"):
        SentencePieceTokenizer.train(SOURCES, TARGETS[:-1], 100)
    with pytest.raises(ValueError, match="no non-empty source text"):
        SentencePieceTokenizer.train(["", " "], ["a", "b"], 100)
    with pytest.raises(TypeError, match="sources must be a sequence of strings"):
        SentencePieceTokenizer.train("abc", ["a"], 100)
    with pytest.raises(ValueError, match="max_sentences"):
        SentencePieceTokenizer.train(SOURCES, TARGETS, 100, max_sentences=0)


def test_built_from_model_bytes(tokenizers):
    tok = tokenizers["unigram", False]
    files = tok.model_files()
    rebuilt = SentencePieceTokenizer(files["source"], files["target"], model_type="unigram")
    assert rebuilt == tok and rebuilt.fingerprint() == tok.fingerprint() and rebuilt.to_dict() == tok.to_dict()
    joint = tokenizers["bpe", True]
    assert SentencePieceTokenizer(joint.model_files()["joint"], model_type="bpe") == joint
    with pytest.raises(ValueError, match="the joint model is not a sentencepiece model"):
        SentencePieceTokenizer(b"not a model")
    with pytest.raises(TypeError, match="must be bytes"):
        SentencePieceTokenizer("a path?")
    json.dumps(tok.to_dict())  # JSON-able


def tiny_model(tok):
    return ff.reference.Transformer(tok.src_vocab_size, tok.tgt_vocab_size, d_model=8, nhead=2,
                                    num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8, max_len=8)


def manifest_of(directory):
    return json.loads((directory / MANIFEST).read_text())


@pytest.mark.parametrize("joint", [False, True])
def test_saved_with_the_checkpoint(tmp_path, tokenizers, joint):
    tok = tokenizers["bpe", joint]
    save_checkpoint(tmp_path, tiny_model(tok), step=7, vocab=tok)
    manifest = manifest_of(tmp_path)
    sides = ["joint"] if joint else ["source", "target"]
    assert manifest["vocab"] == tok.to_dict()
    assert manifest["vocab"]["joint"] is joint and manifest["vocab"]["model_type"] == "bpe"
    for side in sides:
        entry = manifest["files"][f"tokenizer-{side}"]
        assert re.fullmatch(rf"tokenizer-{side}-00000007-[0-9a-f]{{16}}\.model", entry["name"])
        data = (tmp_path / entry["name"]).read_bytes()
        assert data == tok.model_files()[side] and entry["size"] == len(data)
        assert entry["sha256"] == manifest["vocab"]["models"][side]
    ckpt = read_checkpoint(tmp_path)
    loaded = tokenizer_from_manifest(ckpt.manifest, tmp_path)
    assert loaded == tok and loaded.joint == joint and loaded.fingerprint() == tok.fingerprint()
    assert loaded.decode(loaded.encode_target(TARGETS[0])) == TARGETS[0]


def test_replaced_tokenizer_files_are_removed(tmp_path, tokenizers):
    first, second = tokenizers["bpe", False], tokenizers["unigram", True]
    save_checkpoint(tmp_path, tiny_model(first), step=1, vocab=first)
    save_checkpoint(tmp_path, tiny_model(second), step=2, vocab=second)
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("tokenizer-"))
    assert names == [manifest_of(tmp_path)["files"]["tokenizer-joint"]["name"]]
    assert tokenizer_from_manifest(read_checkpoint(tmp_path).manifest, tmp_path) == second
    # A character vocabulary stays in the manifest alone, as before.
    vocab = Vocabulary("abc")
    save_checkpoint(tmp_path, ff.reference.Transformer(len(vocab), len(vocab), d_model=8, nhead=2,
                                                       num_encoder_layers=1, num_decoder_layers=1,
                                                       dim_feedforward=8, max_len=8), step=3, vocab=vocab)
    assert not [n for n in os.listdir(tmp_path) if n.startswith("tokenizer-")]
    manifest = manifest_of(tmp_path)
    assert sorted(manifest["files"]) == ["model"] and tokenizer_from_manifest(manifest, tmp_path) == vocab


def test_tampered_or_missing_tokenizer_file(tmp_path, tokenizers):
    tok = tokenizers["unigram", False]
    save_checkpoint(tmp_path, tiny_model(tok), step=3, vocab=tok)
    manifest = manifest_of(tmp_path)
    path = tmp_path / manifest["files"]["tokenizer-target"]["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    for load in (lambda: read_checkpoint(tmp_path), lambda: tokenizer_from_manifest(manifest, tmp_path)):
        with pytest.raises(ValueError, match=re.escape(str(path)) + ".*SHA-256 does not match"):
            load()
    path.unlink()
    for load in (lambda: read_checkpoint(tmp_path), lambda: tokenizer_from_manifest(manifest, tmp_path)):
        missing = re.escape(str(path)) + ": the tokenizer file named by the manifest is missing"
        with pytest.raises(ValueError, match=missing):
            load()


def test_manifest_schema_checks_the_tokenizer_entry(tmp_path, tokenizers):
    tok = tokenizers["bpe", False]
    save_checkpoint(tmp_path, tiny_model(tok), step=3, vocab=tok)
    good = manifest_of(tmp_path)
    check_manifest("m.json", good)

    def broken(change):
        manifest = json.loads(json.dumps(good))
        change(manifest)
        return manifest

    cases = [
        (lambda m: m["files"].pop("tokenizer-source"), "field 'files.tokenizer-source' is missing"),
        (lambda m: m["vocab"].update(joint="no"), "field 'vocab.joint' must be true or false"),
        (lambda m: m["vocab"]["models"].pop("target"), "field 'vocab.models' must be an object with the keys"),
        (lambda m: m["vocab"]["models"].update(source="ab"), "field 'vocab.models.source' must be a string"),
        (lambda m: m["vocab"].update(src_vocab_size=-1), "field 'vocab.src_vocab_size' must be an integer"),
        (lambda m: m["files"]["tokenizer-target"].update(sha256="0" * 64),
         "field 'files.tokenizer-target.sha256' must be the SHA-256 of vocab.models.target"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_manifest("m.json", broken(change))
    # A manifest naming a file outside the folder is refused before anything is read.
    bad = broken(lambda m: m["files"]["tokenizer-source"].update(name="../x.model"))
    with pytest.raises(ValueError, match="names a bad tokenizer file"):
        tokenizer_from_manifest(bad, tmp_path)
    # A model file that does not fit its description (another tokenizer's, hashes consistent).
    other = tokenizers["unigram", False]
    swapped = broken(lambda m: m["vocab"].update(models=other.to_dict()["models"]))
    with pytest.raises(ValueError, match="SHA-256 does not match its description"):
        tokenizer_from_manifest(swapped, tmp_path)
