"""The command line: train, generate, --help, and one-line errors with exit code 2."""
import subprocess
import sys

import pytest

from fastformer.__main__ import main
from fastformer.checkpoint import read_checkpoint

SMALL = ["--d-model", "16", "--nhead", "2", "--layers", "1", "--ff", "16", "--batch-size", "8",
         "--no-progress", "--reference"]


def run_main(capsys, argv):
    """-> (exit code, stdout, stderr) of main(argv), argparse exits included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [[], ["train"], ["generate"]])
def test_help(capsys, command):
    code, out, _ = run_main(capsys, command + ["--help"])
    assert code == 0 and "usage: fastformer" in out


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--steps", "x"], "--steps: expected a positive integer, got 'x'"),
    (["train", "--steps", "0"], "--steps"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--task", "nope"], "--task: invalid choice"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["generate"], "--checkpoint"),
])
def test_bad_arguments_exit_2(capsys, argv, fragment):
    code, _, err = run_main(capsys, argv)
    assert_one_line_error(code, err, fragment)


def test_bad_files_exit_2(capsys, tmp_path):
    code, _, err = run_main(capsys, ["train", "--data", str(tmp_path / "missing.tsv"), "--checkpoint",
                                     str(tmp_path / "ck")] + SMALL)
    assert_one_line_error(code, err, "missing.tsv: cannot read")
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tba\nno tab\n")
    code, _, err = run_main(capsys, ["train", "--data", str(bad), "--checkpoint", str(tmp_path / "ck")] + SMALL)
    assert_one_line_error(code, err, "line 2")
    code, _, err = run_main(capsys, ["train", "--nhead", "3", "--d-model", "16", "--checkpoint", str(tmp_path / "ck")])
    assert_one_line_error(code, err, "--nhead 3 must divide --d-model 16")
    code, _, err = run_main(capsys, ["train", "--resume", "--checkpoint", str(tmp_path / "none")])
    assert_one_line_error(code, err, "no checkpoint")
    code, _, err = run_main(capsys, ["generate", "--checkpoint", str(tmp_path / "none")])
    assert_one_line_error(code, err, "no such checkpoint folder")


def test_train_generate_resume(capsys, tmp_path):
    ck = str(tmp_path / "ck")
    code, out, err = run_main(capsys, ["train", "--task", "copy", "--steps", "3", "--checkpoint", ck] + SMALL)
    assert code == 0, err
    assert "held-out exact match" in out and "tokens/s" in out
    assert read_checkpoint(ck).step == 3

    inputs = tmp_path / "in.txt"
    inputs.write_text("123\n\n98765\n")
    code, out, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(inputs), "--reference"])
    assert code == 0, err
    lines = out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # one output line per input line
    assert set("".join(lines)) <= set("0123456789")

    inputs.write_text("12\nab\n")
    code, _, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(inputs)])
    assert_one_line_error(code, err, "line 2", "'a' is not in the vocabulary")
    code, _, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(tmp_path / "nope.txt")])
    assert_one_line_error(code, err, "cannot read")

    code, out, err = run_main(capsys, ["train", "--resume", "--steps", "5", "--checkpoint", ck, "--no-progress",
                                       "--reference"])
    assert code == 0, err
    assert "resuming" in err and read_checkpoint(ck).step == 5


def test_data_file_training(capsys, tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{w}\t{w.upper()}\n" for w in ["abc", "ba", "cab", "a", "bca", "cc", "aab", "b"]))
    ck = str(tmp_path / "ck")
    # --tokenizer char: today's character-level training (sentencepiece is the default with --data)
    code, out, err = run_main(capsys, ["train", "--data", str(data), "--tokenizer", "char", "--steps", "2",
                                       "--checkpoint", ck] + SMALL)
    assert code == 0, err
    assert read_checkpoint(ck).manifest["task"]["name"] == "file"
    code, out, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(data)])
    assert code == 0 and len(out.splitlines()) == 8


def test_subprocess_error_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastformer", "train", "--data", str(tmp_path / "x.tsv"),
                             "--checkpoint", str(tmp_path / "ck")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_train_uses_the_compiled_model_by_default(capsys, tmp_path):
    ck = str(tmp_path / "ck")
    small = [a for a in SMALL if a != "--reference"]
    code, out, err = run_main(capsys, ["train", "--task", "copy", "--steps", "3", "--checkpoint", ck] + small)
    assert code == 0, err
    assert "fastformer.model.transformer.Transformer" in err and "held-out exact match" in out
    inputs = tmp_path / "in.txt"
    inputs.write_text("123\n4567\n")
    code, out, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(inputs)])
    assert code == 0, err
    assert len(out.splitlines()) == 2


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")
def test_bf16_training_resumes_and_translates_in_bf16(capsys, tmp_path, monkeypatch):
    """--precision bf16 trains the bf16 model; the checkpoint records it, so
    --resume and generate take it unless --precision says otherwise."""
    import fastformer.commands.translate as translate_command

    ck = str(tmp_path / "ck")
    small = [a for a in SMALL if a != "--reference"]
    code, _, err = run_main(capsys, ["train", "--task", "copy", "--steps", "3", "--checkpoint", ck,
                                     "--precision", "bf16"] + small)
    assert code == 0, err
    assert "in bf16 products, fp32 weights" in err
    assert read_checkpoint(ck).manifest["model"]["compute_dtype"] == "bfloat16"
    code, _, err = run_main(capsys, ["train", "--resume", "--steps", "4", "--checkpoint", ck, "--no-progress"])
    assert code == 0 and "in bf16 products" in err, err
    assert read_checkpoint(ck).manifest["model"]["compute_dtype"] == "bfloat16"

    loaded = []
    load = translate_command.load_translator
    monkeypatch.setattr(translate_command, "load_translator", lambda args: loaded.append(load(args)) or loaded[-1])
    inputs = tmp_path / "in.txt"
    inputs.write_text("123\n4567\n")
    for extra, expected in (([], "bfloat16"), (["--precision", "fp32"], "float32")):
        code, out, err = run_main(capsys, ["generate", "--checkpoint", ck, "--input", str(inputs)] + extra)
        assert code == 0 and len(out.splitlines()) == 2, err
        assert loaded[-1][0].compute_dtype == expected
    code, _, err = run_main(capsys, ["train", "--precision", "fp16", "--checkpoint", ck])
    assert_one_line_error(code, err, "--precision: invalid choice")
