"""What a benchmark result depends on, and the header every family prints:
the CPU, fastformer's build and SIMD level, the measured fp32 peak, the
thread count and binding, numpy's BLAS; and one thread count for every
library in the comparison."""
import contextlib
import ctypes
import os
import platform
import re
import shutil
import subprocess

import numpy as np

import fastformer
from fastformer import ops
from fastformer.bench import uncapped

# The OpenMP settings that pin threads to cores; none set means the runtime's default.
BINDING_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY")


def cpu_model():
    """The CPU's marketing name: /proc/cpuinfo, else lscpu, else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def thread_binding():
    """{variable: value} of the OpenMP binding settings in the environment,
    or 'unset' when there are none."""
    bound = {k: os.environ[k] for k in BINDING_VARIABLES if os.environ.get(k)}
    return bound or "unset"


def blas_info():
    """numpy's BLAS, from numpy.show_config (and threadpoolctl if installed)."""
    info = {"numpy": np.__version__, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "unset_for_this_run": uncapped.unset_for_this_run()}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception as e:  # older numpy: no mode="dicts"
        info["blas"] = f"unavailable ({e.__class__.__name__})"
    try:
        import threadpoolctl
    except ImportError:
        return info
    info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                   "architecture")}
                           for p in threadpoolctl.threadpool_info()]
    return info


def blas_kernel(info):
    """The BLAS kernels numpy runs, as threadpoolctl reports them (a list of
    {"internal_api", "version", "architecture", "num_threads"}), or the
    sentence 'threadpoolctl not installed'."""
    if "threadpools" not in info:
        return "threadpoolctl not installed"
    return [{k: p[k] for k in ("internal_api", "version", "architecture", "num_threads")}
            for p in info["threadpools"] if p.get("user_api") == "blas"]


def measured_peak(simd, threads, tries=5, seconds=0.1, compute_dtype="float32"):
    """fp32 FMA peak in GFLOP/s of `threads` threads at SIMD level `simd`
    (compute_dtype="bfloat16": the peak of the path bf16 products take).

    Best of several short runs: a peak is what the cores can do, and one long
    run would be pulled down by anything else that wakes up meanwhile."""
    return max(ops.fma_peak(simd, seconds, threads, compute_dtype=compute_dtype) for _ in range(tries))


def refresh_peak(header, threads):
    """Measure the FMA peak for `threads` again and keep the best in
    header["fma_peak_gflops"]: a measurement taken while something else ran
    only comes out low."""
    key = str(threads)
    for field, dtype in (("fma_peak_gflops", "float32"), ("bf16_peak_gflops", "bfloat16")):
        if field in header:
            peak = measured_peak(header["simd"], threads, tries=3, compute_dtype=dtype)
            header[field][key] = max(peak, header[field].get(key, 0.0))
    return header["fma_peak_gflops"][key]


def header(threads, torch=None, malloc_kept=None, peak_threads=None, bf16=False):
    """What a result depends on: CPU, build, SIMD level, library versions,
    the thread counts `threads` and their binding, numpy's BLAS kernel, and
    the fp32 FMA peak measured for each count of `peak_threads` (default
    `threads`); with bf16, also the peak of the bf16 products' path."""
    simd = fastformer.get_simd()
    numpy_info = blas_info()
    build = fastformer.build_info()
    binding = {"environment": thread_binding(), "applied": build["thread_binding"]}  # OpenMP's omp_get_proc_bind
    h = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
         "fastformer": build, "numpy": numpy_info, "blas_kernel": blas_kernel(numpy_info),
         "torch": getattr(torch, "__version__", None), "simd": simd, "threads": list(threads),
         "thread_binding": binding,
         "fma_peak_gflops": {str(t): measured_peak(simd, t) for t in (peak_threads or threads)},
         "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "malloc_keeps_freed_memory": malloc_kept}
    if bf16:
        h["bf16_path"] = ops.bf16_path()
        h["bf16_peak_gflops"] = {str(t): measured_peak(simd, t, compute_dtype="bfloat16")
                                 for t in (peak_threads or threads)}
    return h


def _describe_blas(h):
    kernel = h["blas_kernel"]
    if isinstance(kernel, str):
        blas = h["numpy"].get("blas")
        named = " ".join(str(blas.get(k)) for k in ("name", "version") if blas.get(k)) if isinstance(blas, dict) \
            else blas
        return f"{kernel} (numpy built with {named or 'unknown'})"
    return ", ".join(f"{k['internal_api']} {k['version']} kernel {k['architecture']} ({k['num_threads']} threads)"
                     for k in kernel) or "none found by threadpoolctl"


def _describe_caps(info):
    caps = " ".join(f"{k}={info[k]}" for k in uncapped.CAPPING_VARIABLES if info.get(k))
    unset = " ".join(f"{k}={v}" for k, v in info.get("unset_for_this_run", {}).items())
    if caps:
        return f"CAPPED by {caps} (kept: {uncapped.KEEP}=1)"
    if unset:
        return f"uncapped: this machine sets {unset}, unset for this run (only numpy's OpenBLAS reads it)"
    return "OPENBLAS_CORETYPE unset"


def print_header(h):
    """The header in four lines, the same for every family."""
    b = h["fastformer"]
    print(f"cpu: {h['cpu']} ({h['cpu_count']} CPUs)  simd={h['simd']}  openmp={b['openmp']}  "
          f"fastformer {b['version']}  numpy {h['numpy']['numpy']}  torch {h['torch'] or '-'}")
    binding = h["thread_binding"]
    if isinstance(binding, dict):
        binding = " ".join(f"{k}={v}" for k, v in binding.items())
    print(f"threads: {', '.join(map(str, h['threads']))}  binding: {binding}  "
          f"OMP_WAIT_POLICY={h['OMP_WAIT_POLICY'] or 'unset'}  "
          f"malloc keeps freed memory: {h['malloc_keeps_freed_memory']}")
    peaks = ", ".join(f"{p:.1f} ({t} thr)" for t, p in h["fma_peak_gflops"].items())
    print(f"measured fp32 FMA peak ({h['simd']}), GFLOP/s: {peaks}")
    if "bf16_peak_gflops" in h:
        peaks = ", ".join(f"{p:.1f} ({t} thr)" for t, p in h["bf16_peak_gflops"].items())
        print(f"measured bf16 multiply-add peak ({h['bf16_path']}), GFLOP/s: {peaks}")
    print(f"numpy BLAS: {_describe_blas(h)}  {_describe_caps(h['numpy'])}")


# ----- one thread count for every library ---------------------------------------------


def _openblas_setter():
    """openblas_set_num_threads of the OpenBLAS that numpy loaded, found among
    the process's mapped libraries (numpy's wheels rename its symbols)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                return fn
    return None


def set_blas_threads(n):
    """Limit numpy's BLAS to `n` threads at run time (threadpoolctl when
    installed, else OpenBLAS's own setter). Returns whether it took effect;
    if not, the BLAS keeps the count it read from OPENBLAS_NUM_THREADS /
    OMP_NUM_THREADS at start-up."""
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(n, user_api="blas")
        return True
    except ImportError:
        pass
    setter = _openblas_setter()
    if setter is None:
        return False
    setter(int(n))
    return True


def set_all_threads(n, torch=None):
    """The same thread count for fastformer, numpy's BLAS and (if given) torch.
    Returns {"fastformer", "blas", "torch"}: what each now uses (blas: n or None
    when it could not be set)."""
    fastformer.set_num_threads(n)
    used = {"fastformer": fastformer.get_num_threads(), "blas": n if set_blas_threads(n) else None}
    if torch is not None:
        torch.set_num_threads(n)
        used["torch"] = torch.get_num_threads()
    return used


@contextlib.contextmanager
def threads_restored(torch=None):
    """Put fastformer's (and torch's) thread counts back after a thread sweep."""
    before = (fastformer.get_num_threads(), torch.get_num_threads() if torch else None)
    try:
        yield
    finally:
        fastformer.set_num_threads(before[0])
        if torch is not None:
            torch.set_num_threads(before[1])
