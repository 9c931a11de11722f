"""The `step` and `generate` benchmarks run end to end on a micro model and
write the JSON fields users read. No assertion on time: only that each side
ran and the numbers are consistent with each other."""
import json
import math

import pytest

from fastformer.__main__ import main as cli_main
from fastformer.bench.__main__ import main as bench_main
from fastformer.bench.configs import CONFIGS, step_flops
from fastformer.bench import ct2
from fastformer.bench.harness import import_torch

FAST = ["--config", "micro", "--repeat", "1", "--warmup", "0", "--pause", "0"]
IMPLS = ["compiled", "numpy"] + (["torch"] if import_torch() is not None else [])


def test_step_json(tmp_path, capsys):
    path = tmp_path / "step.json"
    assert bench_main(["step", *FAST, "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ms/step" in out and "GFLOP/s" in out
    data = json.loads(path.read_text())
    assert data["header"]["fma_peak_gflops"]["1"] > 0
    assert data["configs"]["micro"]["d_model"] == CONFIGS["micro"].d_model
    rows = {r["impl"]: r for r in data["results"]}
    assert sorted(rows) == sorted(IMPLS)
    for r in rows.values():
        assert r["config"] == "micro" and r["threads"] == 1
        assert r["ms_per_step"] > 0 and len(r["samples_ms"]) == 1
        assert r["flops_per_step"] == step_flops(CONFIGS["micro"])
        assert math.isclose(r["gflops"], r["flops_per_step"] / r["ms_per_step"] * 1e-6, rel_tol=1e-9)
        assert 0 < r["fraction_of_peak"] and r["tokens_per_s"] > 0
        assert r["peak_memory_bytes"] is not None and r["peak_memory_bytes"] >= 0
        assert math.isfinite(r["first_loss"])
    # Same weights and batch: the compiled model's first loss is the reference's
    # (dropout masks come from the same counter-based generator).
    assert rows["compiled"]["first_loss"] == pytest.approx(rows["numpy"]["first_loss"], rel=1e-3)
    (speedup,) = data["speedups"]
    assert speedup["compiled_vs_numpy"] == pytest.approx(rows["numpy"]["compiled_speedup"])
    assert ("compiled_vs_torch" in speedup) == ("torch" in rows)


def test_step_thread_scaling_through_the_cli(tmp_path, capsys):
    path = tmp_path / "scaling.json"
    argv = ["bench", "step", *FAST, "--impl", "compiled", "--threads", "1,2", "--no-memory", "--json", str(path)]
    assert cli_main(argv) == 0
    data = json.loads(path.read_text())
    assert [r["threads"] for r in data["results"]] == [1, 2]
    assert data["results"][0]["peak_memory_bytes"] is None
    (scaling,) = data["scaling"]
    assert scaling["from_threads"] == 1 and scaling["to_threads"] == 2 and scaling["speedup"] > 0


def test_generate_json(tmp_path, capsys):
    path = tmp_path / "generate.json"
    assert bench_main(["generate", *FAST, "--batch", "3", "--tokens", "5", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    rows = {r["impl"]: r for r in data["results"]}
    assert sorted(rows) == sorted(IMPLS + (list(ct2.BACKENDS) if ct2.available() else []))
    for r in rows.values():
        assert r["batch"] == 3 and r["new_tokens"] == 5  # eos is never chosen: a fixed amount of work
        assert r["ms"] > 0 and r["tokens_per_s"] > 0
        assert 0 <= r["agreement"] <= 1
    (speedup,) = data["speedups"]
    assert speedup["compiled_vs_numpy"] == pytest.approx(rows["numpy"]["compiled_speedup"])


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_main(["step", "--config", "huge"])
    assert exc.value.code == 2
    assert "unknown configuration huge" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bench_main(["step", "--impl", "jax"])
    assert exc.value.code == 2


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert bench_main(["step", *FAST, "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0]


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "speedups.png"
    assert bench_main(["step", *FAST, "--impl", "compiled,numpy", "--no-memory", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_beam_rows(tmp_path):
    """Beam search rows: one per (batch, beam) case, PyTorch's greedy-only side left out of beam rows."""
    path = tmp_path / "beam.json"
    assert bench_main(["generate", *FAST, "--impl", "compiled,numpy,torch", "--batch", "2,3", "--beam", "1,2",
                       "--tokens", "4", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    cases = {(r["impl"], r["batch"], r["beam"]) for r in data["results"]}
    assert ("compiled", 3, 2) in cases and ("numpy", 2, 2) in cases
    assert not any(impl == "torch" and beam > 1 for impl, _, beam in cases)
    for r in data["results"]:
        assert r["new_tokens"] == 4 and r["agreement"] == 1.0  # same weights: the same tokens
    assert len(data["speedups"]) == 4


def test_generate_ctranslate2_tokens_equal(tmp_path):
    """The CTranslate2 conversion is exact: both of its backends decode our tokens (greedy and beam)."""
    from test_export import require_ctranslate2

    require_ctranslate2()  # CI installs it (the deploy extra): fails there rather than skipping
    path = tmp_path / "ct2.json"
    assert bench_main(["generate", *FAST, "--impl", "compiled,ct2-onednn,ct2-mkl", "--batch", "4",
                       "--beam", "1,3", "--tokens", "6", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["results"]
    assert {r["impl"] for r in rows} == {"compiled", "ct2-onednn", "ct2-mkl"}
    assert all(r["agreement"] == 1.0 for r in rows)
