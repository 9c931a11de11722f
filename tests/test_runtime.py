"""Threads, SIMD dispatch and build facts of the compiled core."""
import json
import os
import subprocess
import sys

import pytest

import fastformer as ff


def run_python(code, **env):
    """Run `code` in a fresh interpreter with extra environment variables; return its stdout."""
    full_env = dict(os.environ, **env)
    out = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_build_info_fields():
    info = ff.build_info()
    assert info["version"] == ff.__version__
    assert isinstance(info["openmp"], bool)
    assert info["simd"] in ("generic", "avx2", "avx512")
    assert info["simd_detected"] in ("generic", "avx2", "avx512")
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert info["num_threads"] == ff.get_num_threads() >= 1
    assert info["thread_binding"] in ("false", "true", "primary", "close", "spread", "none")


def test_thread_binding_reports_omp_proc_bind():
    """fastformer leaves the binding to the user, and says which one is in effect."""
    import subprocess
    import sys

    code = "import fastformer; print(fastformer.build_info()['thread_binding'])"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY")}
    unset = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    close = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_PROC_BIND="close"), capture_output=True,
                           text=True, check=True)
    expected = ("false", "close") if ff.build_info()["openmp"] else ("none", "none")
    assert (unset.stdout.strip(), close.stdout.strip()) == expected


@pytest.mark.skipif(not os.environ.get("FASTFORMER_REQUIRE_OPENMP"), reason="only CI promises an OpenMP compiler")
def test_ci_build_has_openmp():
    assert ff.build_info()["openmp"] is True


def test_set_num_threads_roundtrip():
    before = ff.get_num_threads()
    try:
        ff.set_num_threads(1)
        assert ff.get_num_threads() == 1
        ff.set_num_threads(3)
        assert ff.get_num_threads() == (3 if ff.build_info()["openmp"] else 1)
    finally:
        ff.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects(bad, error):
    with pytest.raises(error, match="n must"):
        ff.set_num_threads(bad)


def test_omp_num_threads_is_honoured():
    code = "import fastformer as ff; print(ff.get_num_threads())"
    assert run_python(code, OMP_NUM_THREADS="1") == "1"
    if ff.build_info()["openmp"]:
        assert run_python(code, OMP_NUM_THREADS="3") == "3"


def test_fastformer_simd_env_forces_generic():
    code = "import json, fastformer as ff; print(json.dumps(ff.build_info()))"
    info = json.loads(run_python(code, FASTFORMER_SIMD="generic"))
    assert info["simd"] == "generic"
    assert info["simd_detected"] == ff.build_info()["simd_detected"]


def test_unknown_fastformer_simd_warns():
    code = "import warnings, fastformer as ff; print(ff.get_simd())"
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, FASTFORMER_SIMD="sse9"), check=True)
    assert "FASTFORMER_SIMD" in proc.stderr
    assert proc.stdout.strip() == ff.simd_levels()[-1]


def test_set_simd_caps_at_detected():
    before = ff.get_simd()
    try:
        assert ff.set_simd("generic") == "generic"
        assert ff.get_simd() == "generic"
        assert ff.set_simd("avx512") == ff.build_info()["simd_detected"]
    finally:
        ff.set_simd(before)


def test_set_simd_rejects():
    with pytest.raises(ValueError, match="name must be one of"):
        ff.set_simd("sse9")
    with pytest.raises(TypeError, match="name must be a str"):
        ff.set_simd(2)


def test_simd_levels_are_ordered():
    levels = ff.simd_levels()
    assert levels[0] == "generic"
    assert levels[-1] == ff.build_info()["simd_detected"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to tell a pinned process from a free one")
def test_children_get_the_cpus_the_process_started_with():
    """With OMP_PROC_BIND set, the OpenMP runtime pins the main thread to one
    CPU as it loads; processes fastformer starts (benchmark workers, MPI
    ranks) get the start-up CPU set back instead of inheriting that one CPU."""
    code = ("import os, subprocess, sys; import fastformer; from fastformer import _affinity; "
            "child = subprocess.run([sys.executable, '-c', 'import os; print(len(os.sched_getaffinity(0)))'], "
            "capture_output=True, text=True, preexec_fn=_affinity.restore).stdout.strip(); "
            "print(len(_affinity.INITIAL), child)")
    env = dict(os.environ, OMP_PROC_BIND="close", OMP_PLACES="cores")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    started, child = out.stdout.split()
    assert int(started) == len(os.sched_getaffinity(0)) and child == started, out.stderr
