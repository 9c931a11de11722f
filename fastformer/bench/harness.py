"""The one harness every benchmark family runs on: the shared arguments, the
header (`fastformer.bench.machine`), the interleaved timer, the peak-memory
probe, speedups, tables and JSON.

A family is a module with HELP (one line), add_arguments(parser) and
run(args) -> exit status, listed in `fastformer.bench.__main__.FAMILIES`;
one that measures memory also has memory_probe(spec) (see peak_memory)."""
import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, NamedTuple

import fastformer
from fastformer import _affinity
from fastformer._atomic import atomic_write_bytes
from fastformer.bench import machine
from fastformer.commands.common import nonnegative_int, positive_int

# how a side is named in the speedup lines
NAMES = {"numpy": "NumPy", "torch": "PyTorch", "torch-bf16": "PyTorch bf16 autocast", "compiled": "fastformer fp32",
         "compiled-bf16": "fastformer bf16"}


# ----- arguments ------------------------------------------------------------------------


def parse_threads(text):
    """'1,2' -> [1, 2] (argparse type); each entry a positive integer."""
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
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in impls]
        if not names or bad:
            raise argparse.ArgumentTypeError(f"unknown implementation {', '.join(bad) or repr(text)}; "
                                             f"choose from {', '.join(impls)}")
        return [n for n in impls if n in names]
    return parse


def add_arguments(p, *, repeat, warmup, pause=None, threads="list", what="samples", repeat_aliases=(),
                  malloc=True):
    """The arguments every family shares: --threads ("list": comma-separated
    counts run in turn, "one": a single count, None: none), --repeat (with
    `repeat_aliases`, the family's older names for it), --warmup, --pause
    (None: the family has none), --default-malloc and --json."""
    if threads == "list":
        p.add_argument("--threads", type=parse_threads, default=None,
                       help="comma-separated thread counts for every library, e.g. 1,2 for a scaling table "
                            "(default: all cores)")
    elif threads == "one":
        p.add_argument("--threads", type=positive_int, default=None,
                       help="threads for fastformer and numpy's BLAS alike (default: all cores)")
    p.add_argument("--repeat", *repeat_aliases, dest="repeat", type=positive_int, default=repeat,
                   help=f"timed {what} per side (default {repeat})")
    p.add_argument("--warmup", type=nonnegative_int, default=warmup,
                   help=f"untimed {what} per side first (default {warmup})")
    if pause is not None:
        p.add_argument("--pause", type=float, default=pause,
                       help="seconds idle before each timed turn, so the other side's spinning worker "
                            f"threads have gone to sleep (default {pause})")
    if malloc:
        p.add_argument("--default-malloc", action="store_true",
                       help="leave glibc's malloc as it is (freed large blocks go back to the OS, so both sides "
                            "page-fault their large outputs and temporaries afresh on every call)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")


def thread_counts(args):
    """The thread counts of a run: --threads as a list, or all cores."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return [fastformer.get_num_threads()]
    return [threads] if isinstance(threads, int) else list(threads)


# ----- the header -----------------------------------------------------------------------


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


def release_freed_memory():
    """Return glibc's free heap to the OS (malloc_trim), so RSS is what is live."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def start(args, threads, torch=None, peak_threads=None, bf16=False, **settings):
    """Begin a run: keep freed memory (unless --default-malloc; None in the
    header for a family without that flag), measure and
    print the header (with bf16, the bf16 path's peak too), and record the
    run's settings (--repeat, --warmup, --pause and `settings`) in it.
    Returns the header."""
    if hasattr(args, "default_malloc"):
        malloc_kept = False if args.default_malloc else keep_freed_memory()
    else:  # the family runs its work in other processes
        malloc_kept = None
    header = machine.header(threads, torch, malloc_kept, peak_threads, bf16)
    for name, key in (("repeat", "repeat"), ("warmup", "warmup"), ("pause", "pause_s")):
        if getattr(args, name, None) is not None:
            header[key] = getattr(args, name)
    header.update(settings)
    machine.print_header(header)
    return header


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


def progress(message):
    """A progress line on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


# ----- the timer ------------------------------------------------------------------------


def _seconds_per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def interleaved(fns, repeat, warmup=0, pause=0.0, block=1, warm_s=0.0, min_sample_s=0.0, report=None):
    """Time each of `fns` ({name: callable}), alternating between them round
    by round after `warmup` untimed calls each, so every side sees the same
    machine state. Returns {name: [seconds per call]}, `repeat` x `block`
    samples each; take their median.

    A side's turn in a round: `pause` seconds idle (after a call, OpenBLAS
    and OpenMP worker threads busy-wait for a while, and a sample taken while
    the other side's spin would share the cores with them), untimed calls
    for `warm_s` seconds (waking sleeping workers and idle cores is then not
    timed, as in a loop where kernels run back to back), then `block` timed
    samples. A sample is one call, or as many as make `min_sample_s` seconds
    (counted once, from the fastest side, after the warm-up) so that the
    timer's own cost does not count. `report(round, {name: last seconds})`
    is called after each round (progress output)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    calls = 1
    if min_sample_s > 0 and fns:
        fastest = min(_seconds_per_call(fn, 1) for fn in fns.values())
        calls = max(1, int(min_sample_s / max(fastest, 1e-7)))
    samples = {name: [] for name in fns}
    for r in range(repeat):
        last = {}
        for name, fn in fns.items():
            if pause > 0:
                time.sleep(pause)
            end = time.perf_counter() + warm_s
            while time.perf_counter() < end:
                fn()
            for _ in range(block):
                samples[name].append(_seconds_per_call(fn, calls))
            last[name] = samples[name][-1]
        if report is not None:
            report(r, last)
    return samples


def median(xs):
    return float(statistics.median(xs))


# ----- the peak-memory probe ------------------------------------------------------------


def _proc_status_bytes(field):
    """A memory field of /proc/self/status ('VmHWM', 'VmRSS') in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0,
    by writing 5 to /proc/self/clear_refs). Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def importing_this_fastformer(env):
    """`env` for a child Python that must import this very fastformer, installed or not."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastformer.__file__)))
    return dict(env, PYTHONPATH=os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")])))


def peak_memory(family, spec, threads=None):
    """How much running something raises the peak resident set (VmHWM, C
    mallocs included, which tracemalloc does not see), in a fresh Python
    process: ru_maxrss would carry the parent's peak across exec.

    The child calls `family`'s memory_probe(spec) (`family` named as in the
    registry): it sets up what must not count (inputs, the libraries' one-off
    warm-up) and returns the callable to measure. `threads`, when given, is
    the child's OMP_NUM_THREADS and OPENBLAS_NUM_THREADS. Returns
    {"peak_rise_bytes", "baseline_rss_bytes"}, or None if the child failed
    (its stderr goes to ours)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env = importing_this_fastformer(env)
    child = "from fastformer.bench.harness import _memory_child; _memory_child()"
    proc = subprocess.run([sys.executable, "-c", child, family, json.dumps(spec)], env=env,
                          preexec_fn=_affinity.restore,
                          stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory_child():
    from fastformer.bench.__main__ import FAMILIES

    family, spec = sys.argv[1], json.loads(sys.argv[2])
    measured = FAMILIES[family].memory_probe(spec)
    gc.collect()
    release_freed_memory()
    # From here on, what grows is the measured call's.
    if _reset_peak_rss():
        base = _proc_status_bytes("VmRSS")
    else:  # older kernel: the rise from the peak so far may undercount
        base = _proc_status_bytes("VmHWM")
    measured()
    print(json.dumps({"peak_rise_bytes": _proc_status_bytes("VmHWM") - base, "baseline_rss_bytes": base}))


# ----- results --------------------------------------------------------------------------


def speedups(rows, time_key, keys=("config", "threads"), base="compiled"):
    """Per group of rows alike in `keys` that has a `base` row (the compiled
    side; "compiled-bf16" for a bf16 run): {keys..., "compiled_vs_<impl>"}
    for every other side, its time over the base side's (> 1: the base is
    faster). Also sets each row's "compiled_speedup" (None where no base row ran)."""
    out = []
    for key in dict.fromkeys(tuple(r[k] for k in keys) for r in rows):
        by = {r["impl"]: r for r in rows if tuple(r[k] for k in keys) == key}
        ours = by.get(base)
        for r in by.values():
            r["compiled_speedup"] = r[time_key] / ours[time_key] if ours else None
        if ours:
            entry = dict(zip(keys, key))
            entry.update({f"compiled_vs_{k}": r[time_key] / ours[time_key] for k, r in by.items() if k != base})
            out.append(entry)
    return out


def format_speedups(entries, what, label, base="compiled"):
    """'<label(entry)>: compiled <what> is 3.10x NumPy, 2.60x PyTorch' lines
    (`base` names the compiled side the ratios are of)."""
    lines = []
    ours = "compiled" if base == "compiled" else NAMES[base]
    for s in entries:
        parts = [f"{v:.2f}x {NAMES.get(k[len('compiled_vs_'):], k[len('compiled_vs_'):])}"
                 for k, v in s.items() if k.startswith("compiled_vs_")]
        if parts:
            lines.append(f"{label(s)}: {ours} {what} is " + ", ".join(parts))
    return "\n".join(lines)


class Column(NamedTuple):
    """One table column: its heading, width, and the cell text of a row."""

    head: str
    width: int
    cell: Callable
    left: bool = False


def column(head, key, spec="", width=None, left=False):
    """A column showing row[key] formatted by `spec` ('-' for None)."""
    def cell(row):
        value = row[key]
        return "-" if value is None else format(value, spec)
    return Column(head, max(len(head), width or 0), cell, left)


def _cells(columns, texts):
    return " ".join(f"{t:<{c.width}}" if c.left else f"{t:>{c.width}}" for c, t in zip(columns, texts)).rstrip()


def table_head(columns):
    """The heading line and its rule."""
    head = _cells(columns, [c.head for c in columns])
    return head + "\n" + "-" * len(head)


def table_line(columns, row):
    return _cells(columns, [c.cell(row) for c in columns])


def format_table(columns, rows):
    return "\n".join([table_head(columns)] + [table_line(columns, r) for r in rows])


def write_json(path, obj):
    """Write `obj` as indented JSON (non-JSON values as their str()), atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def finish(args, payload):
    """Write the run's JSON when --json asked for it."""
    if getattr(args, "json", None):
        write_json(args.json, payload)
        print(f"wrote {args.json}")
