"""Translating many lines: `fastformer.translate` (n-best order and scores
against the length-penalty formula and the reference search, input order,
empty lines, token budgets, per-sentence output caps, greedy = beam 1) and
the `fastformer translate` command (output, n-best format, every bad input)."""
import importlib

import numpy as np
import pytest

import fastformer as ff
from fastformer import reference as R
from fastformer.checkpoint import save_checkpoint
from fastformer.data import make_batch
from fastformer.data.vocab import EOS_ID
from fastformer.decoding import strip_eos
from fastformer.reference.beam_search import log_softmax
from fastformer.translate import output_caps, translate, translate_ids
from test_cli import SMALL, assert_one_line_error, run_main
from tiny_training import reverse_task, train_reverse

translate_module = importlib.import_module("fastformer.translate")  # the module, even if a package
# attribute of that name is the function
POSITIONS = 12
LINES = ["123", "", "98765", "5", "12345678", "44", "", "3141592", "271", "60"]


@pytest.fixture(scope="module")
def trained():
    """A model half-way through learning to reverse digit strings (confident
    enough to end its outputs, unsure enough for beams to differ), its
    vocabulary, and its NumPy reference twin."""
    task = reverse_task()
    m = train_reverse(task, 60, POSITIONS)
    ref = R.Transformer(**m.config(), dtype=np.float64)
    ref.load_state_dict(m.state_dict())
    ref.eval()
    return m, task.vocab, ref


def forced_score(ref, src, tokens, alpha, cap):
    """The score of hypothesis `tokens` (ids, no eos) for source ids `src` by
    teacher forcing in float64: the log-probability sum of its tokens and eos
    (eos forced, log-probability 0, when it reached its cap) / ((5 + L) / 6)
    ** alpha, L counting the eos."""
    tgt = [int(t) for t in tokens]
    batch = make_batch([src], [tgt])
    logp = log_softmax(ref.forward(batch.src, batch.tgt_in).astype(np.float64))[0]
    labels = tgt + [EOS_ID]
    total = sum(logp[t, y] for t, y in enumerate(labels[:-1] if len(tgt) == cap else labels))
    return total / ((5 + len(labels)) / 6) ** alpha


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_nbest_order_and_scores(trained, alpha):
    m, vocab, ref = trained
    sources = [vocab.encode(x) for x in LINES]
    result = translate_ids(m, sources, vocab.bos_id, vocab.eos_id, beam_size=4, n_best=4, length_penalty=alpha)
    texts = translate(m, vocab, LINES, beam_size=4, n_best=4, length_penalty=alpha)
    caps = output_caps([len(x) for x in LINES], POSITIONS, 1.5, 10)
    assert len(result) == len(texts) == len(LINES)
    for src, nbest, text_nbest, cap in zip(sources, result, texts, caps):
        assert [t for t, _ in text_nbest] == [vocab.decode(t.tolist()) for t, _ in nbest]
        assert [s for _, s in text_nbest] == [s for _, s in nbest]
        if not src:
            assert text_nbest == [("", 0.0)]
            continue
        scores = [s for _, s in nbest]
        assert len(nbest) == 4 and scores == sorted(scores, reverse=True)
        assert len({tuple(t.tolist()) for t, _ in nbest}) == 4  # distinct hypotheses
        for tokens, score in nbest:
            assert len(tokens) <= cap and EOS_ID not in tokens
            np.testing.assert_allclose(score, forced_score(ref, src, tokens, alpha, cap), rtol=1e-4, atol=1e-4)


def test_compiled_equals_reference_search(trained):
    m, vocab, ref = trained
    ref32 = R.Transformer(**m.config())
    ref32.load_state_dict(m.state_dict())
    for kwargs in (dict(beam_size=1), dict(beam_size=3, n_best=3, length_penalty=0.6),
                   dict(beam_size=4, n_best=2, max_len_a=0.5, max_len_b=1)):
        got, want = translate(m, vocab, LINES, **kwargs), translate(ref32, vocab, LINES, **kwargs)
        assert [[t for t, _ in n] for n in got] == [[t for t, _ in n] for n in want]
        np.testing.assert_allclose([s for n in got for _, s in n], [s for n in want for _, s in n],
                                   rtol=1e-4, atol=1e-4)


def test_input_order_restored_whatever_the_batches(trained):
    m, vocab, _ = trained
    full = translate(m, vocab, LINES, beam_size=3, n_best=2)
    alone = [translate(m, vocab, [line], beam_size=3, n_best=2)[0] for line in LINES]
    for budget in (1, 8, 20, 8192):
        assert translate(m, vocab, LINES, beam_size=3, n_best=2, max_tokens=budget) == full
    assert [[t for t, _ in n] for n in full] == [[t for t, _ in n] for n in alone]
    np.testing.assert_allclose([s for n in full for _, s in n], [s for n in alone for _, s in n], atol=1e-5)
    # with a binding cap, too: each sentence's cap is its own, not its batch's
    capped = dict(beam_size=2, max_len_a=0.5, max_len_b=1)
    want = [translate(m, vocab, [line], **capped)[0] for line in LINES]
    got = translate(m, vocab, LINES, max_tokens=64, **capped)
    assert [n[0][0] for n in got] == [n[0][0] for n in want]
    for line, nbest in zip(LINES, got):
        assert len(nbest[0][0]) <= int(0.5 * len(line) + 1)


def test_empty_lines(trained):
    m, vocab, _ = trained
    assert translate(m, vocab, ["", ""], beam_size=2) == [[("", 0.0)], [("", 0.0)]]
    result = translate(m, vocab, [])
    assert result == [] and result.stats.sentences == 0 and result.stats.batches == 0


def test_token_budget_respected(trained, monkeypatch):
    m, vocab, _ = trained
    shapes = []
    search = translate_module._search

    def spy(model, src, *args):
        shapes.append(src.shape)
        return search(model, src, *args)

    monkeypatch.setattr(translate_module, "_search", spy)
    result = translate(m, vocab, LINES * 3, beam_size=2, max_tokens=16)
    assert shapes and all(b * s <= 16 for b, s in shapes)
    assert sum(b for b, _ in shapes) == 3 * sum(1 for x in LINES if x)  # empty lines are not decoded
    assert [s for _, s in shapes] == sorted((s for _, s in shapes), reverse=True)  # longest first
    assert result.stats.batches == len(shapes) and result.stats.max_batch_tokens <= 16
    shapes.clear()
    translate(m, vocab, LINES, beam_size=2, max_tokens=4)  # a line longer than the budget travels alone
    assert (1, 8) in shapes and all(b * s <= 4 or b == 1 for b, s in shapes)


def test_greedy_is_beam_1(trained):
    m, vocab, _ = trained
    lines = [x for x in LINES if x]
    batch = make_batch([vocab.encode(x) for x in lines], [[] for _ in lines])
    greedy = strip_eos(m.generate(batch.src, POSITIONS - 1, vocab.bos_id, vocab.eos_id, 1,
                                  batch.src_key_padding_mask), vocab.eos_id)
    result = translate(m, vocab, lines, beam_size=1, max_len_a=0, max_len_b=POSITIONS)
    assert [n[0][0] for n in result] == [vocab.decode(ids) for ids in greedy]


def test_stats(trained):
    m, vocab, _ = trained
    result = translate(m, vocab, LINES, beam_size=2)
    s = result.stats
    assert s.sentences == len(LINES) and s.source_tokens == sum(len(x) for x in LINES)
    assert s.target_tokens == sum(len(n[0][0]) for n in result)
    assert s.seconds > 0 and s.sentences_per_second > 0 and s.tokens_per_second > 0
    assert "sentences/s" in s.summary() and "target tokens/s" in s.summary()


def test_bad_input(trained):
    m, vocab, _ = trained
    with pytest.raises(ValueError, match="n_best=3 is more than beam_size=2"):
        translate(m, vocab, LINES, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="beam_size"):
        translate(m, vocab, LINES, beam_size=0)
    with pytest.raises(ValueError, match=r"input, line 2: 13 source tokens, the model takes at most 12"):
        translate(m, vocab, ["1", "1" * 13])
    with pytest.raises(ValueError, match=r"f.txt, line 3: character 'a'"):
        translate(m, vocab, ["1", "2", "a"], where="f.txt")
    with pytest.raises(ValueError, match="max_len_a"):
        translate(m, vocab, LINES, max_len_a=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        translate(m, vocab, LINES, max_tokens=0)
    with pytest.raises(TypeError, match="line 1: expected a str"):
        translate(m, vocab, [b"12"])
    other = ff.Transformer(len(vocab) + 1, len(vocab) + 1, d_model=8, nhead=2, num_encoder_layers=1,
                           num_decoder_layers=1, dim_feedforward=8, max_len=POSITIONS)
    with pytest.raises(ValueError, match="src vocabulary has 13 tokens, the model's 14"):
        translate(other, vocab, LINES)


# ----- the command line -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(trained, tmp_path_factory):
    m, vocab, _ = trained
    return str(save_checkpoint(tmp_path_factory.mktemp("ck") / "ck", m, vocab=vocab))


def write_input(tmp_path, lines, name="in.txt"):
    path = tmp_path / name
    path.write_text("".join(x + "\n" for x in lines))
    return str(path)


def test_cli_translate(capsys, tmp_path, trained, checkpoint):
    m, vocab, _ = trained
    inputs = write_input(tmp_path, LINES)
    code, out, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", inputs, "--beam", "3",
                                       "--length-penalty", "0.6"])
    assert code == 0, err
    want = translate(m, vocab, LINES, beam_size=3, length_penalty=0.6)
    assert out.split("\n")[:-1] == [n[0][0] for n in want] and out.endswith("\n")
    assert "sentences/s" in err and "target tokens/s" in err
    # --output, atomically written; the reference model decodes the same
    target = tmp_path / "out.txt"
    code, out2, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", inputs, "--beam", "3",
                                        "--length-penalty", "0.6", "--output", str(target), "--reference"])
    assert code == 0 and out2 == "" and target.read_text() == out


def test_cli_nbest(capsys, tmp_path, trained, checkpoint):
    m, vocab, _ = trained
    inputs = write_input(tmp_path, LINES)
    code, out, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", inputs, "--beam", "4",
                                       "--n-best", "3", "--max-tokens", "10"])
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert all(len(r) == 3 for r in rows)
    want = translate(m, vocab, LINES, beam_size=4, n_best=3)
    expected = [(str(i), t) for i, n in enumerate(want) for t, _ in n]
    assert [(r[0], r[2]) for r in rows] == expected
    for i in range(len(LINES)):
        scores = [float(r[1]) for r in rows if r[0] == str(i)]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores, [s for _, s in want[i]], atol=1e-6)


def test_cli_stdin_and_tsv(capsys, monkeypatch, tmp_path, checkpoint):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"12\t21\r\n\n345\tx\n")))
    code, out, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--tsv", "--beam", "1"])
    assert code == 0, err
    lines = out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and set(lines[0] + lines[2]) <= set("0123456789")


def test_cli_bad_input(capsys, tmp_path, trained, checkpoint):
    m, vocab, _ = trained
    inputs = write_input(tmp_path, ["12"])
    bare = str(save_checkpoint(tmp_path / "bare", m))  # no tokenizer
    code, _, err = run_main(capsys, ["translate", "--checkpoint", bare, "--input", inputs])
    assert_one_line_error(code, err, "bare", "no tokenizer")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", inputs, "--beam", "2",
                                     "--n-best", "3"])
    assert_one_line_error(code, err, "--n-best 3 is more than --beam 2")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"12\n3\xff4\n5\n")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", str(bad)])
    assert_one_line_error(code, err, "bad.txt, line 2: not valid UTF-8")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", str(tmp_path / "no.txt")])
    assert_one_line_error(code, err, "no.txt: cannot read")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", str(tmp_path / "none"), "--input", inputs])
    assert_one_line_error(code, err, "no such checkpoint folder")
    long = write_input(tmp_path, ["1", "1" * 13], "long.txt")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", long])
    assert_one_line_error(code, err, "long.txt, line 2: 13 source tokens")
    code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, "--input", inputs, "--output",
                                     str(tmp_path / "no" / "out.txt")])
    assert_one_line_error(code, err, "--output", "out.txt", "does not exist")
    for flag, value in (("--beam", "0"), ("--max-len-a", "-1"), ("--length-penalty", "nan"), ("--max-tokens", "x")):
        code, _, err = run_main(capsys, ["translate", "--checkpoint", checkpoint, flag, value])
        assert_one_line_error(code, err, flag)


def test_generate_alias(capsys, tmp_path, trained, checkpoint):
    m, vocab, _ = trained
    inputs = write_input(tmp_path, ["123\tignored", "", "98"])
    code, out, err = run_main(capsys, ["generate", "--checkpoint", checkpoint, "--input", inputs, "--max-len", "5",
                                       "--batch-size", "1"])
    assert code == 0, err
    want = translate(m, vocab, ["123", "", "98"], beam_size=1, max_len_a=0, max_len_b=5)
    assert out.split("\n")[:-1] == [n[0][0] for n in want]
    code, _, err = run_main(capsys, ["generate", "--checkpoint", checkpoint, "--input", inputs, "--max-len", "12"])
    assert_one_line_error(code, err, "--max-len 12 is more than the model's 12 positions allow")


def test_cli_on_a_trained_data_file(capsys, tmp_path):
    """A checkpoint of `fastformer train --data` (a character vocabulary) translates."""
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ["abc", "ba", "cab", "a", "bca", "cc", "aab", "b"]))
    ck = str(tmp_path / "ck")
    code, _, err = run_main(capsys, ["train", "--data", str(data), "--tokenizer", "char", "--steps", "2",
                                     "--checkpoint", ck] + SMALL)
    assert code == 0, err
    inputs = write_input(tmp_path, ["abc", "", "cb"])
    code, out, err = run_main(capsys, ["translate", "--checkpoint", ck, "--input", inputs, "--n-best", "2"])
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "1", "2", "2"] and rows[2][1:] == ["0.000000", ""]
    assert all(set(r[2]) <= set("abc") for r in rows)
