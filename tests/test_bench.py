"""The `step` and `generate` benchmarks run end to end on a micro model and
write the JSON fields users read. No assertion on time: only that each side
ran and the numbers are consistent with each other."""
import json
import math

import pytest

from fastformer.__main__ import main as cli_main
from fastformer.bench.__main__ import main as bench_main
from fastformer.bench.configs import CONFIGS, step_flops
from fastformer.bench import ct2, machine, uncapped
from fastformer.bench.harness import import_torch

FAST = ["--config", "micro", "--repeat", "1", "--warmup", "0", "--pause", "0"]


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    """Run the benchmarks in this process even where the machine caps
    OpenBLAS (test_capped_openblas_is_benchmarked_uncapped checks the rerun)."""
    monkeypatch.setenv(uncapped.KEEP, "1")
IMPLS = ["compiled", "numpy"] + (["torch"] if import_torch() is not None else [])


def test_step_json(tmp_path, capsys):
    path = tmp_path / "step.json"
    assert bench_main(["step", *FAST, "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ms/step" in out and "GFLOP/s" in out and "measured fp32 FMA peak" in out
    data = json.loads(path.read_text())
    assert data["header"]["fma_peak_gflops"]["1"] > 0
    assert data["configs"]["micro"]["d_model"] == CONFIGS["micro"].d_model
    rows = {r["impl"]: r for r in data["results"]}
    assert sorted(rows) == sorted(IMPLS)
    assert "Trainer.train_step" in rows["compiled"]["model"] and "Trainer.train_step" in rows["numpy"]["model"]
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


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")
def test_step_bf16_sides(tmp_path, capsys, torch):
    """--precision bf16: fastformer's bf16 model and PyTorch bf16 autocast beside
    the fp32 sides, the speedups those of the bf16 model."""
    path = tmp_path / "bf16.json"
    argv = ["step", *FAST, "--impl", "compiled,torch", "--precision", "bf16", "--threads", "1", "--no-memory",
            "--json", str(path)]
    assert bench_main(argv) == 0
    out = capsys.readouterr().out
    assert "fastformer bf16 step is" in out and "PyTorch bf16 autocast" in out
    data = json.loads(path.read_text())
    rows = {r["impl"]: r for r in data["results"]}
    assert list(rows) == ["compiled-bf16", "compiled", "torch-bf16", "torch"]
    assert "compute_dtype=bfloat16" in rows["compiled-bf16"]["model"] and "autocast" in rows["torch-bf16"]["model"]
    (speedup,) = data["speedups"]
    assert set(speedup) == {"config", "threads", "compiled_vs_compiled", "compiled_vs_torch-bf16",
                            "compiled_vs_torch"}
    assert rows["compiled-bf16"]["compiled_speedup"] == 1.0
    peaks = data["header"]["bf16_peak_gflops"]["1"], data["header"]["fma_peak_gflops"]["1"]
    for impl, peak in (("compiled-bf16", peaks[0]), ("torch-bf16", peaks[0]), ("compiled", peaks[1])):
        assert rows[impl]["fraction_of_peak"] == pytest.approx(rows[impl]["gflops"] / peak)
    # same weights, batch and dropout masks: bf16 changes the first loss by its rounding only
    assert rows["compiled"]["first_loss"] == pytest.approx(rows["compiled-bf16"]["first_loss"], rel=1e-2)
    assert math.isfinite(rows["torch-bf16"]["first_loss"])


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


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")
def test_generate_bf16_row(tmp_path, capsys):
    path = tmp_path / "generate.json"
    assert bench_main(["generate", *FAST, "--batch", "3", "--tokens", "5", "--impl", "compiled,compiled-bf16",
                       "--json", str(path)]) == 0
    rows = {r["impl"]: r for r in json.loads(path.read_text())["results"]}
    assert list(rows) == ["compiled", "compiled-bf16"] and "bfloat16" in rows["compiled-bf16"]["model"]
    assert rows["compiled-bf16"]["new_tokens"] == 5 and 0 <= rows["compiled-bf16"]["agreement"] <= 1


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


# ----- the harness: one registry, one header, one timer ----------------------------------


def test_every_family_is_registered_the_same_way():
    from fastformer.bench.__main__ import ALL, FAMILIES, build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "family"]
    assert set(sub.choices) == set(FAMILIES) | {"all"}
    assert set(FAMILIES) == {"gemm", "ops", "ops_attention", "step", "generate", "distributed"}
    assert set(ALL) <= set(FAMILIES)
    for name, family in FAMILIES.items():
        assert isinstance(family.HELP, str) and callable(family.add_arguments) and callable(family.run)
        args = parser.parse_args([name, "--repeat", "2", "--warmup", "0", "--json", "x.json"])
        assert (args.repeat, args.warmup, args.json, args.run) == (2, 0, "x.json", family.run)


def test_every_family_prints_the_one_header_first(monkeypatch):
    """Each family's run starts with harness.start (the header), before any timing."""
    import fastformer.commands.ranks
    from fastformer.bench import harness
    from fastformer.bench.__main__ import FAMILIES, build_parser

    class HeaderReached(Exception):
        pass

    def start(args, threads, *rest, **settings):
        assert threads and all(isinstance(t, int) and t >= 1 for t in threads)
        raise HeaderReached

    monkeypatch.setattr(harness, "start", start)
    monkeypatch.setattr(fastformer.commands.ranks, "find_mpiexec", lambda: "mpiexec")
    parser = build_parser()
    for name in FAMILIES:
        with pytest.raises(HeaderReached):
            FAMILIES[name].run(parser.parse_args([name]))


def test_header_fields(monkeypatch, capsys):
    import sys

    import fastformer
    from fastformer.bench import machine

    for name in machine.BINDING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails: as when not installed
    header = machine.header([1])
    assert header["cpu"] and header["cpu"] == machine.cpu_model()
    assert header["simd"] == fastformer.build_info()["simd"]
    assert header["threads"] == [1] and header["fma_peak_gflops"]["1"] > 0
    assert header["thread_binding"] == {"environment": "unset", "applied": fastformer.build_info()["thread_binding"]}
    assert header["blas_kernel"] == "threadpoolctl not installed"
    machine.print_header(header)
    out = capsys.readouterr().out
    for text in (header["cpu"], f"simd={header['simd']}", "FMA peak", "threads: 1", "binding: environment=unset",
                 "threadpoolctl not installed"):
        assert text in out
    monkeypatch.setenv("OMP_PROC_BIND", "close")
    monkeypatch.setenv("OMP_PLACES", "cores")
    assert machine.thread_binding() == {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}


def test_blas_kernel_from_threadpoolctl():
    from fastformer.bench import machine

    info = {"threadpools": [
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.27", "num_threads": 2,
         "architecture": "Zen"},
        {"user_api": "openmp", "internal_api": "openmp", "version": None, "num_threads": 2, "architecture": None}]}
    assert machine.blas_kernel(info) == [{"internal_api": "openblas", "version": "0.3.27", "architecture": "Zen",
                                          "num_threads": 2}]


def test_interleaved_alternates_sides_round_by_round():
    from fastformer.bench.harness import interleaved

    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples = interleaved(fns, repeat=3, warmup=1, block=2)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "b": 6}
    assert all(s >= 0 for v in samples.values() for s in v)


def test_step_times_the_trainers_own_step(monkeypatch):
    import numpy as np

    from fastformer import _kernels, ops, reference
    from fastformer.bench import step
    from fastformer.bench.configs import synthetic_batch
    from fastformer.trainer import Trainer

    seen = []
    real = Trainer.train_step

    def train_step(self, batch):
        seen.append((type(self.model).__module__, _kernels.kernel("cross_entropy", np.float32)))
        return real(self, batch)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    config = CONFIGS["micro"]
    for impl in ("compiled", "numpy"):
        fn, _ = step.make_side(impl, config, synthetic_batch(config), 0.1)
        assert math.isfinite(fn())
    # the NumPy side runs the trainer with the NumPy twins of its kernels
    assert seen == [("fastformer.model.transformer", ops.cross_entropy),
                    ("fastformer.reference.transformer", reference.cross_entropy)]
    assert _kernels.kernel("cross_entropy", np.float32) is ops.cross_entropy


def test_gemm_json(tmp_path, capsys):
    path = tmp_path / "gemm.json"
    assert bench_main(["gemm", "--sets", "per-head", "--threads", "1", "--repeat", "1", "--warmup", "0",
                       "--pause", "0", "--json", str(path)]) == 0
    assert "threads: 1" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["header"]["threads"] == [1] and data["header"]["fma_peak_1thread_gflops"] > 0
    assert [r["set"] for r in data["results"]] == ["per-head", "per-head"]
    for r in data["results"]:
        assert r["fastformer_gflops"] > 0 and r["numpy_gflops"] > 0 and r["threads"] == 1
        assert r["ratio"] == pytest.approx(r["fastformer_gflops"] / r["numpy_gflops"])
    assert data["summary"]["min_ratio_per_head"] == min(r["ratio"] for r in data["results"])


def test_capped_openblas_is_benchmarked_uncapped(tmp_path, capsys, monkeypatch):
    """OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE make the bench run again without
    them (OpenBLAS reads them at load), and the header says so."""
    monkeypatch.delenv(uncapped.KEEP)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    path = tmp_path / "step.json"
    assert bench_main(["step", *FAST, "--impl", "compiled,numpy", "--threads", "1", "--no-memory",
                       "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "uncapped: this machine sets OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512" in out
    numpy_info = json.loads(path.read_text())["header"]["numpy"]
    assert numpy_info["OPENBLAS_CORETYPE"] is None and numpy_info["OPENBLAS_L2_SIZE"] is None
    assert numpy_info["unset_for_this_run"] == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


def test_kept_caps_are_named_in_the_header():
    info = {"OPENBLAS_CORETYPE": "Haswell", "unset_for_this_run": {}}
    assert machine._describe_caps(info).startswith("CAPPED by OPENBLAS_CORETYPE=Haswell")
    assert machine._describe_caps({"unset_for_this_run": {}}) == "OPENBLAS_CORETYPE unset"


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs on emulated")
def test_gemm_bf16_against_torch(tmp_path, capsys, torch):
    path = tmp_path / "gemm.json"
    assert bench_main(["gemm", "--precision", "bf16", "--sets", "per-head", "--repeat", "1", "--warmup", "0",
                       "--pause", "0", "--json", str(path)]) == 0
    assert "torch.matmul on bf16 tensors" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["header"]["precision"] == "bf16" and data["header"]["bf16_path"] in ("amx", "avx512_bf16", "emulated")
    assert data["header"]["bf16_peak_gflops"]["1"] > 0  # %peak of bf16 rows: against the bf16 path's own peak
    for r in data["results"]:
        assert r["torch_gflops"] > 0 and r["ratio"] == pytest.approx(r["fastformer_gflops"] / r["torch_gflops"])
