"""The `fastformer demo` command runs end to end."""
from fastformer.__main__ import main


def test_demo_runs(capsys):
    assert main(["demo", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "step    3" in out and "held-out" in out
