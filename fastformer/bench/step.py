"""One full training step, side by side: the compiled `fastformer.Transformer`,
the NumPy reference `fastformer.reference.Transformer` and PyTorch
(`torch.nn.Transformer` with embeddings and generator, see
`fastformer.bench.torch_model`), with identical weights and batch.

    python -m fastformer.bench step [--config tiny,small,base,long] [--threads 1,2]
        [--impl compiled,numpy,torch] [--repeat 5] [--json PATH] [--plot PATH.png]

A step is what a training loop does per batch: zero the gradients, forward,
cross-entropy with label smoothing 0.1 over the non-padding targets, backward,
AdamW (lr 1e-3, weight decay 0.01); dropout 0.1 everywhere SPEC puts it. Each
side uses its own pieces: the compiled model with `fastformer.ops.cross_entropy`
and `fastformer.optim.AdamW`; the reference with the NumPy loss and the NumPy
Adam kernel; PyTorch with `F.cross_entropy` and `torch.optim.AdamW`. All get
the same thread count (fastformer, numpy's BLAS, torch.set_num_threads).
Until the compiled model is built, the "compiled" side runs the reference
model (with the compiled loss and optimizer) and the output says so.

Timing: after `--warmup` untimed steps each, the sides run alternately, one
step per turn, each after `--pause` seconds idle; the table gives the median
of `--repeat` steps. glibc is told to keep freed memory (as a caching
allocator does) unless --default-malloc.

Columns:
  ms/step     median wall time of one step
  tok/s       target tokens (labels that are not padding) per second
  GFLOP/s     step FLOPs / median time, FLOPs counted from the configuration
  %peak       GFLOP/s over the measured fp32 FMA peak of this machine, SIMD
              level and thread count (`fastformer.ops.fma_peak`; measured
              at the start and before each configuration, the best kept)
  peak MiB    rise of peak RSS (VmHWM) over two steps in a fresh process,
              from just before the model is built: parameters, gradients,
              optimizer state, activations, workspaces. The libraries' one-off
              set-up is excluded (a micro-model step runs first); glibc's
              default malloc there, as in a user's process.
  speedup     this side's time over the compiled side's: how many times
              faster the compiled step is

FLOPs of a step: matrix products only (LayerNorm, softmax, dropout, the loss
and the optimizer are not counted), 2 per multiply-add, backward = 2 x forward.
With N = B*S source and M = B*T target tokens, d = d_model, f = d_ff, V the
target vocabulary, forward =
    L_enc * (8 N d^2 + 4 N S d + 4 N d f)
  + L_dec * (8 M d^2 + 4 M T d + 4 M d^2 + 4 N d^2 + 4 M S d + 4 M d f)
  + 2 M d V
i.e. QKV and output projections (8 x tokens x d^2), attention Q K^T and P V
(4 x tokens x keys x d; the causal self-attention counted in full, not
halved), cross-attention (Q and output projections on the target, K and V
on the memory), the FFN (4 x tokens x d x f) and the generator. `base` is
620 GFLOP per step.
"""
import gc
import json
import os
import subprocess
import sys

import numpy as np

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref
from fastformer.bench import common
from fastformer.bench.configs import CONFIGS, PUBLIC_CONFIGS, parse_configs, step_flops, synthetic_batch
from fastformer.commands.common import nonnegative_int, positive_int, unit_float
from fastformer.data.batch import IGNORE_INDEX
from fastformer.optim import AdamW
from fastformer.reference import optim as ref_optim

IMPLS = ("compiled", "numpy", "torch")
LABEL_SMOOTHING = 0.1
LR, WEIGHT_DECAY = 1e-3, 0.01


class NumpyAdamW(AdamW):
    """fastformer.optim.AdamW with the NumPy Adam kernel, so that the NumPy
    side of the comparison is NumPy throughout."""

    def _kernel(self, name):
        return getattr(ref_optim, name)


def _ours(cls, kwargs, state, cross_entropy, optimizer_class, batch):
    model = cls(**kwargs)
    if state is not None:
        model.load_state_dict(state)
    model.train()
    opt = optimizer_class(model, lr=LR, weight_decay=WEIGHT_DECAY)

    def step():
        model.zero_grad()
        logits = model.forward(batch.src, batch.tgt_in, src_key_padding_mask=batch.src_key_padding_mask,
                               tgt_key_padding_mask=batch.tgt_key_padding_mask)
        loss, dlogits = cross_entropy(logits, batch.tgt_out, IGNORE_INDEX, LABEL_SMOOTHING)
        model.backward(dlogits)
        opt.step()
        return float(loss)

    return step, f"{cls.__module__}.{cls.__qualname__}"


def _torch(torch, kwargs, state, batch):
    import torch.nn.functional as F

    from fastformer.bench.torch_model import TorchTwin, twin_of

    model = twin_of(state, **kwargs) if state is not None else TorchTwin(**kwargs)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in (batch.src, batch.tgt_in, batch.tgt_out))
    src_mask = torch.from_numpy(batch.src_key_padding_mask)
    tgt_mask = torch.from_numpy(batch.tgt_key_padding_mask)
    vocab = kwargs["tgt_vocab_size"]

    def step():
        opt.zero_grad()
        logits = model(src, tgt_in, src_mask, tgt_mask)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=IGNORE_INDEX,
                               label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        opt.step()
        return loss.item()

    return step, f"torch {torch.__version__} nn.Transformer"


def make_side(impl, config, batch, dropout, state=None, torch=None):
    """(step function -> loss, description) of one implementation; `state`
    (a reference state_dict) gives the weights, None its own initialisation."""
    kwargs = config.model_kwargs(dropout)
    if impl == "compiled":
        return _ours(ff.Transformer, kwargs, state, ops.cross_entropy, AdamW, batch)
    if impl == "numpy":
        return _ours(ref.Transformer, kwargs, state, ref.cross_entropy, NumpyAdamW, batch)
    return _torch(torch, kwargs, state, batch)


# ----- peak memory, in a fresh process ------------------------------------------------


def measure_memory(impl, config, threads, dropout, padding):
    """Rise of peak RSS over two steps of `impl`, in a fresh Python process
    (ru_maxrss would carry the parent's peak across exec). Returns
    {"peak_rise_bytes", "baseline_rss_bytes"}, or None if the child failed
    (its stderr goes to ours)."""
    spec = dict(impl=impl, config=config.name, threads=threads, dropout=dropout, padding=padding)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    # The child must import this very fastformer, installed or not.
    root = os.path.dirname(os.path.dirname(os.path.abspath(ff.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "fastformer.bench.step", json.dumps(spec)], env=env,
                          stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory_child(spec_json):
    spec = json.loads(spec_json)
    torch = common.import_torch() if spec["impl"] == "torch" else None
    common.set_all_threads(spec["threads"], torch)
    # One step of a micro model first, so that what the libraries set up once
    # (thread pools, autograd engine, kernel caches) is not counted as the
    # configuration's memory; then hand the freed heap back to the OS.
    warm, _ = make_side(spec["impl"], CONFIGS["micro"], synthetic_batch(CONFIGS["micro"]), spec["dropout"],
                        torch=torch)
    warm()
    del warm
    gc.collect()
    common.release_freed_memory()
    config = CONFIGS[spec["config"]]
    batch = synthetic_batch(config, padding=spec["padding"])
    # From here on, what grows is the step's: model, gradients, optimizer state, activations.
    if common.reset_peak_rss():
        base = common.proc_status_bytes("VmRSS")
    else:  # older kernel: the rise from the peak so far may undercount
        base = common.proc_status_bytes("VmHWM")
    step, _ = make_side(spec["impl"], config, batch, spec["dropout"], torch=torch)
    for _ in range(2):  # the second step is the steady state (optimizer state exists)
        step()
    print(json.dumps({"peak_rise_bytes": common.proc_status_bytes("VmHWM") - base, "baseline_rss_bytes": base}))


# ----- the benchmark -------------------------------------------------------------------


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs(",".join(PUBLIC_CONFIGS)),
                   help=f"comma-separated sizes from {', '.join(PUBLIC_CONFIGS)} (default: all)")
    p.add_argument("--threads", type=common.parse_threads, default=None,
                   help="comma-separated thread counts, e.g. 1,2 for a scaling table (default: all cores)")
    p.add_argument("--impl", type=common.impl_list(IMPLS), default=list(IMPLS),
                   help="comma-separated sides from compiled,numpy,torch (default: all; torch when installed)")
    p.add_argument("--repeat", type=positive_int, default=5, help="timed steps per side (default 5)")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="untimed steps per side first (default 2)")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds idle before each timed step, so the previous side's spinning worker "
                        "threads have gone to sleep (default 0.2)")
    p.add_argument("--dropout", type=unit_float, default=0.1, help="dropout probability (default 0.1)")
    p.add_argument("--no-padding", action="store_true",
                   help="full-length rows (default: lengths from 3/4 to all of S and T, with padding masks)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc as it is for the timings")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--plot", metavar="PATH.png", help="draw the speedups (needs matplotlib)")


def check_plot_available(path):
    """Fail before the long run, with one line, when --plot cannot be honoured."""
    if path is None:
        return True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("error: --plot needs matplotlib: pip install 'fastformer[plot]'", file=sys.stderr)
        return False
    return True


def _bench_config(config, threads, impls, args, torch):
    """Time (and measure the memory of) every side on one configuration."""
    batch = synthetic_batch(config, padding=not args.no_padding)
    state = ref.Transformer(**config.model_kwargs(args.dropout)).state_dict()
    losses, fns, models = {}, {}, {}
    for impl in impls:
        step, models[impl] = make_side(impl, config, batch, args.dropout, state, torch)
        losses[impl] = []
        fns[impl] = (lambda s, out: lambda: out.append(s()))(step, losses[impl])
    del state

    def report(r, last):
        times = "  ".join(f"{k} {1e3 * v:.1f} ms" for k, v in last.items())
        common.progress(f"  step {config.name} x{threads} round {r + 1}/{args.repeat}: {times}")

    common.progress(f"step {config.name} x{threads}: warm-up ({args.warmup} steps per side)")
    samples = common.interleaved(fns, args.repeat, args.warmup, args.pause, report)
    del fns
    flops = step_flops(config)
    tokens = int((batch.tgt_out != IGNORE_INDEX).sum())
    rows = []
    for impl in impls:
        t = common.median(samples[impl])
        rows.append(dict(config=config.name, threads=threads, impl=impl, model=models[impl], ms_per_step=1e3 * t,
                         samples_ms=[1e3 * s for s in samples[impl]], target_tokens_per_step=tokens,
                         tokens_per_s=tokens / t, flops_per_step=flops, gflops=flops / t * 1e-9,
                         fraction_of_peak=None, first_loss=losses[impl][0], peak_memory_bytes=None))
    if not args.no_memory:
        for row in rows:
            common.progress(f"step {config.name} x{threads}: peak memory of {row['impl']} (fresh process)")
            mem = measure_memory(row["impl"], config, threads, args.dropout, not args.no_padding) or {}
            row["peak_memory_bytes"] = mem.get("peak_rise_bytes")
            row["baseline_rss_bytes"] = mem.get("baseline_rss_bytes")
    return rows


def _mib(b):
    return "-" if b is None else f"{b / 2 ** 20:.1f}"


def format_table(rows):
    head = (f"{'config':<7} {'thr':>3} {'impl':<9} {'ms/step':>9} {'tok/s':>9} {'GFLOP/s':>8} {'%peak':>6} "
            f"{'peak MiB':>9} {'speedup':>8} {'loss':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = "-" if r["compiled_speedup"] is None or r["impl"] == "compiled" else f"{r['compiled_speedup']:.2f}x"
        lines.append(f"{r['config']:<7} {r['threads']:>3} {r['impl']:<9} {r['ms_per_step']:>9.1f} "
                     f"{r['tokens_per_s']:>9.0f} {r['gflops']:>8.1f} {100 * r['fraction_of_peak']:>5.1f}% "
                     f"{_mib(r['peak_memory_bytes']):>9} {sp:>8} {r['first_loss']:>7.3f}")
    return "\n".join(lines)


def summarize(rows):
    """Speedups per (config, threads), and thread scaling per (config, impl)."""
    speedups, scaling = common.compiled_speedups(rows, "ms_per_step"), []
    for key in dict.fromkeys((r["config"], r["impl"]) for r in rows):
        by = {r["threads"]: r["ms_per_step"] for r in rows if (r["config"], r["impl"]) == key}
        if len(by) > 1:
            lo, hi = min(by), max(by)
            scaling.append({"config": key[0], "impl": key[1], "from_threads": lo, "to_threads": hi,
                            "speedup": by[lo] / by[hi]})
    return speedups, scaling


def plot(path, speedups):
    """Grouped bars: the compiled step's speedup over NumPy and over PyTorch per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s['config']}\n{s['threads']} thr" for s in speedups]
    x = np.arange(len(speedups))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(speedups) + 2), 3.5))
    for i, (key, name) in enumerate((("compiled_vs_numpy", "vs NumPy reference"),
                                     ("compiled_vs_torch", "vs PyTorch"))):
        bars = ax.bar(x + (i - 0.5) * 0.38, [s.get(key, 0.0) for s in speedups], 0.38, label=name)
        ax.bar_label(bars, fmt="%.1fx", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, labels)
    ax.set_ylabel("speedup of the compiled step (x)")
    ax.set_title("fastformer training step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args):
    if not check_plot_available(args.plot):
        return 2
    impls, torch = common.sides(args.impl)
    threads_list = args.threads or [ff.get_num_threads()]
    malloc_kept = False if args.default_malloc else common.keep_freed_memory()
    header = common.machine_header(threads_list, torch, malloc_kept)
    header.update(repeat=args.repeat, warmup=args.warmup, pause_s=args.pause, dropout=args.dropout,
                  label_smoothing=LABEL_SMOOTHING, padding=not args.no_padding)
    common.print_header(header)
    print(f"median of {args.repeat} alternating steps per side after {args.warmup} warm-up; dropout "
          f"{args.dropout}, label smoothing {LABEL_SMOOTHING}, AdamW\n")
    rows = []
    with common.threads_restored(torch):
        for threads in threads_list:
            used = common.set_all_threads(threads, torch)
            if used["blas"] is None and "numpy" in impls:
                print(f"note: could not set numpy's BLAS threads to {threads} (it keeps its start-up count)")
            for config in args.config:
                common.refresh_peak(header, threads)
                rows += _bench_config(config, threads, impls, args, torch)
    for config in dict.fromkeys(r["config"] for r in rows):
        print(f"{config}: {CONFIGS[config].describe()}, {step_flops(CONFIGS[config]) / 1e9:.1f} GFLOP/step")
    for row in rows:  # against the best peak seen: a busy moment only lowers a measurement
        row["fraction_of_peak"] = row["gflops"] / header["fma_peak_gflops"][str(row["threads"])]
    speedups, scaling = summarize(rows)
    print()
    print(format_table(rows))
    print("%peak against the fp32 FMA peak, best of the measurements before each configuration: " +
          ", ".join(f"{p:.1f} GFLOP/s ({t} thr)" for t, p in header["fma_peak_gflops"].items()))
    print()
    print(common.format_speedups(speedups, "step"))
    for s in scaling:
        print(f"{s['config']} {s['impl']}: {s['from_threads']} -> {s['to_threads']} threads {s['speedup']:.2f}x")
    configs = {c: CONFIGS[c]._asdict() for c in dict.fromkeys(r["config"] for r in rows)}
    if args.json:
        common.write_json(args.json, {"header": header, "configs": configs, "results": rows,
                                      "speedups": speedups, "scaling": scaling})
        print(f"wrote {args.json}")
    if args.plot and speedups:
        plot(args.plot, speedups)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":  # the peak-memory child: python -m fastformer.bench.step SPEC_JSON
    _memory_child(sys.argv[1])
