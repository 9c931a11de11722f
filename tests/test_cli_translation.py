"""`fastformer train` on a parallel corpus: sentencepiece, token budgets,
accumulation, EMA, validation, best/last, exact resume, and every bad input
the translation path refuses (one line, exit 2, the good checkpoint intact)."""
import json

import numpy as np
import pytest

from fastformer.checkpoint import read_checkpoint
from fastformer.data.translation_task import translation_splits
from test_cli import run_main

TINY = ["--d-model", "16", "--nhead", "2", "--layers", "1", "--ff", "32", "--no-progress"]
CORPUS = ["--spm-model-type", "bpe", "--vocab-size", "120", "--max-tokens", "600"]


def assert_one_line_error(code, err, *fragments):
    """The command's last stderr line is the error (progress lines may come before it)."""
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert "error" in lines[-1], err
    for fragment in fragments:
        assert fragment in lines[-1], err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The built-in translation task, small: train.tsv, valid.tsv and parallel train.en / train.de."""
    root = tmp_path_factory.mktemp("corpus")
    splits = translation_splits({"train": 400, "valid": 12}, seed=3)
    for name, pairs in splits.items():
        (root / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    (root / "train.en").write_text("".join(s + "\n" for s, _ in splits["train"]), encoding="utf-8")
    (root / "train.de").write_text("".join(t + "\n" for _, t in splits["train"]), encoding="utf-8")
    return root


def _weights(path):
    return read_checkpoint(path).model_state


def test_train_translate_and_resume_exactly(capsys, tmp_path, corpus):
    data = ["--data", str(corpus / "train.tsv"), "--valid", str(corpus / "valid.tsv")] + CORPUS
    run = data + ["--accum", "2", "--ema", "0.9", "--valid-every", "2", "--dropout", "0.1"] + TINY
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    code, out, err = run_main(capsys, ["train", "--steps", "4", "--checkpoint", whole] + run)
    assert code == 0, err
    assert "sentencepiece bpe vocabulary" in err and "validation BLEU" in out
    manifest = read_checkpoint(whole).manifest
    assert manifest["vocab"]["format"] == "fastformer-sentencepiece" and manifest["task"]["name"] == "corpus"
    assert manifest["trainer"]["accum"] == 2 and manifest["trainer"]["ema"]["decay"] == 0.9
    history = [json.loads(line) for line in open(f"{whole}/history.jsonl")]
    assert [e["step"] for e in history if "valid_bleu" in e] == [2, 4]
    assert read_checkpoint(f"{whole}/best").manifest["vocab"] == manifest["vocab"]

    # Stopped at step 2 and resumed (settings from the checkpoint): bitwise the same run.
    code, _, err = run_main(capsys, ["train", "--steps", "2", "--checkpoint", part] + run)
    assert code == 0, err
    code, _, err = run_main(capsys, ["train", "--resume", "--steps", "4", "--checkpoint", part, "--no-progress"])
    assert code == 0, err
    assert "tokenized ids from the cache" in err
    a, b = _weights(whole), _weights(part)
    assert all(np.array_equal(a[k], b[k]) for k in a)

    inputs = tmp_path / "in.txt"
    inputs.write_text("The journey takes nine weeks.\n\nat 18:48\n", encoding="utf-8")
    code, out, err = run_main(capsys, ["translate", "--checkpoint", f"{whole}/best", "--input", str(inputs),
                                       "--beam", "2"])
    assert code == 0, err
    assert len(out.split("\n")) == 4 and out.split("\n")[1] == ""  # one line per input line, empty stays empty


def test_parallel_files_and_joint_vocabulary(capsys, tmp_path, corpus):
    ck = str(tmp_path / "ck")
    code, out, err = run_main(capsys, ["train", "--src", str(corpus / "train.en"), "--tgt", str(corpus / "train.de"),
                                       "--joint-vocab", "--steps", "1", "--checkpoint", ck] + CORPUS + TINY)
    assert code == 0, err
    vocab = read_checkpoint(ck).manifest["vocab"]
    assert vocab["joint"] and vocab["src_vocab_size"] == vocab["tgt_vocab_size"] == 120
    assert "held out of" in err  # no --valid: a seeded hold-out of the training pairs


def test_char_tokenizer_with_token_budget(capsys, tmp_path, corpus):
    ck = str(tmp_path / "ck")
    code, _, err = run_main(capsys, ["train", "--data", str(corpus / "train.tsv"), "--tokenizer", "char",
                                     "--max-tokens", "2000", "--steps", "1", "--checkpoint", ck] + TINY)
    assert code == 0, err
    manifest = read_checkpoint(ck).manifest
    assert manifest["vocab"]["format"] == "fastformer-char-vocab" and manifest["task"]["name"] == "corpus"


@pytest.mark.parametrize("extra, fragments", [
    (["--vocab-size", "100000"], ["--vocab-size 100000", "at most"]),
    (["--max-tokens", "20"], ["--max-tokens 20", "longest kept example"]),
    (["--valid", "MISSING"], ["MISSING", "cannot read"]),
    (["--src", "x.en"], ["give --data or --src and --tgt, not both"]),
    (["--task", "copy"], ["--task or a corpus"]),
])
def test_bad_input_leaves_the_checkpoint_alone(capsys, tmp_path, corpus, extra, fragments):
    ck = str(tmp_path / "ck")
    good = ["train", "--data", str(corpus / "train.tsv"), "--steps", "1", "--checkpoint", ck] + CORPUS + TINY
    assert run_main(capsys, good)[0] == 0
    before = (tmp_path / "ck" / "manifest.json").read_bytes()
    code, _, err = run_main(capsys, good + extra)
    assert_one_line_error(code, err, *fragments)
    assert (tmp_path / "ck" / "manifest.json").read_bytes() == before


def test_bad_corpus_files(capsys, tmp_path, corpus):
    ck = ["--checkpoint", str(tmp_path / "ck")] + TINY
    code, _, err = run_main(capsys, ["train", "--src", str(corpus / "train.en")] + ck)
    assert_one_line_error(code, err, "--src and --tgt go together")
    short = tmp_path / "short.de"
    short.write_text("eins\n", encoding="utf-8")
    code, _, err = run_main(capsys, ["train", "--src", str(corpus / "train.en"), "--tgt", str(short)] + CORPUS + ck)
    assert_one_line_error(code, err, "differ in length")
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"one\teins\ntwo\tzw\xffei\n")
    code, _, err = run_main(capsys, ["train", "--data", str(bad)] + CORPUS + ck)
    assert_one_line_error(code, err, "bad.tsv", "line 2", "UTF-8")
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    code, _, err = run_main(capsys, ["train", "--data", str(empty)] + CORPUS + ck)
    assert_one_line_error(code, err, "empty.tsv")


def test_export_with_sentencepiece_decodes_the_same(capsys, tmp_path, corpus):
    """The exported CTranslate2 model, fed the exported sentencepiece model's pieces,
    gives fastformer's greedy translations."""
    from test_export import require_ctranslate2

    ctranslate2 = require_ctranslate2()
    import sentencepiece

    ck, out = str(tmp_path / "ck"), str(tmp_path / "ct2")
    code, _, err = run_main(capsys, ["train", "--data", str(corpus / "train.tsv"), "--steps", "30", "--lr", "3e-3",
                                     "--checkpoint", ck] + CORPUS + TINY)
    assert code == 0, err
    code, _, err = run_main(capsys, ["export", "--format", "ctranslate2", "--checkpoint", ck, "--out", out])
    assert code == 0, err
    lines = [line.split("\t")[0] for line in (corpus / "valid.tsv").read_text(encoding="utf-8").splitlines()]
    (tmp_path / "in.txt").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    code, ours, err = run_main(capsys, ["translate", "--checkpoint", ck, "--input", str(tmp_path / "in.txt"),
                                        "--beam", "1", "--max-len-a", "0", "--max-len-b", "40"])
    assert code == 0, err
    source = sentencepiece.SentencePieceProcessor(model_file=f"{out}/source.spm.model")
    target = sentencepiece.SentencePieceProcessor(model_file=f"{out}/target.spm.model")
    translator = ctranslate2.Translator(out, device="cpu", intra_threads=1)
    results = translator.translate_batch([source.encode(x, out_type=str) for x in lines], beam_size=1,
                                         max_decoding_length=40)
    theirs = [target.decode(r.hypotheses[0]) for r in results]
    assert ours.splitlines() == theirs


def test_token_budget_batches_over_two_ranks_match_one_process(capsys, tmp_path, corpus, mpiexec):
    """Token-budget batches of any size, cut into micro-batches: 2 ranks give one process's weights."""
    import os
    import subprocess
    import sys

    run = ["train", "--data", str(corpus / "train.tsv"), "--micro-batch-size", "16", "--accum", "2", "--steps", "2",
           "--dropout", "0.1", "--threads", "1"] + CORPUS + TINY
    code, _, err = run_main(capsys, run + ["--checkpoint", str(tmp_path / "one")])
    assert code == 0, err
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "fastformer", *run, "--nproc", "2", "--checkpoint",
                             str(tmp_path / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(np.array_equal(a[k], b[k]) for k in a)
