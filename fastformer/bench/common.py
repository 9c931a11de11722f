"""What the benchmark families share: the machine description, the measured
FMA peak, thread control for every library in the comparison, interleaved
timing, peak-memory probes and JSON output."""
import contextlib
import ctypes
import json
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

import fastformer
from fastformer import ops


def keep_freed_memory():
    """Ask glibc to keep freed memory instead of returning it to the OS, as a
    caching allocator does: otherwise every large temporary of either side is
    page-faulted afresh (a few microseconds per 4 KiB page), and the timings
    measure the allocator's trimming heuristics instead of the kernels.
    Applies to both sides alike; returns whether it took effect."""
    try:
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1
        return ok and libc.mallopt(m_trim_threshold, 1 << 62) == 1
    except (OSError, AttributeError):
        return False


def blas_info():
    """numpy's BLAS, from numpy.show_config (and threadpoolctl if installed)."""
    info = {"numpy": np.__version__, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception as e:  # older numpy: no mode="dicts"
        info["blas"] = f"unavailable ({e.__class__.__name__})"
    try:
        import threadpoolctl

        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                               for p in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    return info


def measured_peak(simd, threads, tries=5, seconds=0.1):
    """fp32 FMA peak in GFLOP/s of `threads` threads at SIMD level `simd`.

    Best of several short runs: a peak is what the cores can do, and one long
    run would be pulled down by anything else that wakes up meanwhile."""
    return max(ops.fma_peak(simd, seconds, threads) for _ in range(tries))


def cpu_model():
    """The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_threads(text):
    """'1,2' -> [1, 2] (argparse type); each entry a positive integer."""
    import argparse

    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def impl_list(impls):
    """An argparse type: 'compiled,torch' -> the named sides of `impls`, in
    `impls` order (compiled first: the speedup base)."""
    def parse(text):
        import argparse

        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in impls]
        if not names or bad:
            raise argparse.ArgumentTypeError(f"unknown implementation {', '.join(bad) or repr(text)}; "
                                             f"choose from {', '.join(impls)}")
        return [n for n in impls if n in names]
    return parse


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


def machine_header(threads, torch=None, malloc_kept=None):
    """What a result depends on: CPU, build, library versions, the measured
    peak for every thread count in `threads`, and the environment knobs."""
    simd = fastformer.get_simd()
    header = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "fastformer": fastformer.build_info(), "numpy": blas_info(),
              "torch": getattr(torch, "__version__", None), "simd": simd,
              "fma_peak_gflops": {str(t): measured_peak(simd, t) for t in threads},
              "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
              "malloc_keeps_freed_memory": malloc_kept}
    return header


def print_header(header):
    """The header's gist in three lines."""
    b = header["fastformer"]
    print(f"{header['cpu']} ({header['cpu_count']} CPUs)  fastformer {b['version']} simd={header['simd']} "
          f"openmp={b['openmp']}  numpy {header['numpy']['numpy']}  torch {header['torch'] or '-'}")
    peaks = ", ".join(f"{p:.1f} ({t} thr)" for t, p in header["fma_peak_gflops"].items())
    print(f"measured fp32 FMA peak, GFLOP/s: {peaks}")
    print(f"malloc keeps freed memory: {header['malloc_keeps_freed_memory']}  "
          f"OMP_WAIT_POLICY={header['OMP_WAIT_POLICY'] or '(unset)'}")


def progress(message):
    """A progress line on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def interleaved(fns, repeat, warmup, pause=0.0, report=None):
    """Time each of `fns` ({name: callable}) `repeat` times, alternating
    between them round by round after `warmup` untimed calls each, so every
    side sees the same machine state. Returns {name: [seconds]}.

    Each call follows `pause` seconds of idle: after a call, OpenBLAS and
    OpenMP worker threads busy-wait for a while, and the next side's sample
    would share the cores with them. `report(round, {name: seconds})` is
    called after each timed round (progress output)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for r in range(repeat):
        last = {}
        for name, fn in fns.items():
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            last[name] = time.perf_counter() - t0
            samples[name].append(last[name])
        if report is not None:
            report(r, last)
    return samples


def median(xs):
    return float(statistics.median(xs))


def reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0,
    by writing 5 to /proc/self/clear_refs). Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_status_bytes(field):
    """A memory field of /proc/self/status ('VmHWM', 'VmRSS') in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def write_json(path, obj):
    """Write `obj` as indented JSON (non-JSON values as their str())."""
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
        fh.write("\n")


def compiled_speedups(rows, time_key):
    """Per (config, threads) with a compiled row: {"config", "threads",
    "compiled_vs_numpy", "compiled_vs_torch"} (the other side's time over the
    compiled side's; present for the sides that ran). Also sets each row's
    "compiled_speedup" (None where no compiled row ran)."""
    out = []
    for key in dict.fromkeys((r["config"], r["threads"]) for r in rows):
        by = {r["impl"]: r for r in rows if (r["config"], r["threads"]) == key}
        base = by.get("compiled")
        for r in by.values():
            r["compiled_speedup"] = r[time_key] / base[time_key] if base else None
        if base:
            entry = {"config": key[0], "threads": key[1]}
            entry.update({f"compiled_vs_{k}": by[k][time_key] / base[time_key] for k in ("numpy", "torch")
                          if k in by})
            out.append(entry)
    return out


def format_speedups(speedups, what):
    """'tiny x2: compiled <what> is 3.10x NumPy, 2.60x PyTorch' lines."""
    lines = []
    for s in speedups:
        parts = [f"{s[k]:.2f}x {name}" for k, name in (("compiled_vs_numpy", "NumPy"),
                                                        ("compiled_vs_torch", "PyTorch")) if k in s]
        if parts:
            lines.append(f"{s['config']} x{s['threads']}: compiled {what} is " + ", ".join(parts))
    return "\n".join(lines)


def release_freed_memory():
    """Return glibc's free heap to the OS (malloc_trim), so RSS is what is live."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def refresh_peak(header, threads):
    """Measure the FMA peak for `threads` again and keep the best in
    header["fma_peak_gflops"]: a peak is what the cores can do, and a
    measurement taken while something else ran only comes out low."""
    key = str(threads)
    peak = measured_peak(header["simd"], threads, tries=3)
    header["fma_peak_gflops"][key] = max(peak, header["fma_peak_gflops"].get(key, 0.0))
    return header["fma_peak_gflops"][key]


def import_torch():
    """torch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def sides(impls):
    """(impls, torch) for a run: torch imported when a side needs it; the
    PyTorch side dropped, with a note, when torch is not installed."""
    impls = list(impls)
    torch = import_torch() if "torch" in impls else None
    if "torch" in impls and torch is None:
        print("note: torch is not installed: the PyTorch side is skipped")
        impls.remove("torch")
    return impls, torch


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
