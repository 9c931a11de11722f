"""One full training step, side by side: `fastformer.Trainer.train_step` on
the compiled `fastformer.Transformer` and on the NumPy reference
`fastformer.reference.Transformer`, and PyTorch (`torch.nn.Transformer` with
embeddings and generator, see `fastformer.bench.torch_model`), with
identical weights and batch.

    python -m fastformer.bench step [--config tiny,small,base,long] [--threads 1,2]
        [--impl compiled,numpy,torch] [--precision fp32|bf16] [--repeat 5] [--json PATH] [--plot PATH.png]

A step is what a training loop does per batch: zero the gradients, forward,
cross-entropy with label smoothing 0.1 over the non-padding targets, backward,
AdamW (lr 1e-3, weight decay 0.01); dropout 0.1 everywhere SPEC puts it. For
fastformer's two models it is the trainer's own step, so the benchmark times
what `fastformer train` runs (with its gradient norm and finiteness checks);
the NumPy side runs it with every kernel the trainer picks (loss, norms,
AdamW) taken from the NumPy twins (`numpy_kernels`), so it is NumPy
throughout. PyTorch runs its usual loop with `F.cross_entropy` and
`torch.optim.AdamW`. All get the same thread count (fastformer, numpy's
BLAS, torch.set_num_threads).

--precision bf16 adds the mixed-precision sides beside the fp32 ones:
`compiled-bf16` (fastformer.Transformer(compute_dtype="bfloat16")) and
`torch-bf16` (the same loop under torch.autocast("cpu", dtype=torch.bfloat16),
the loss in fp32); the speedups are then those of compiled-bf16.

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
import contextlib
import sys

import numpy as np

import fastformer as ff
from fastformer import _kernels
from fastformer import distributed
from fastformer import reference as ref
from fastformer.bench import harness, machine
from fastformer.bench.configs import CONFIGS, PUBLIC_CONFIGS, parse_configs, step_flops, synthetic_batch
from fastformer.bench.harness import Column, column
from fastformer.commands.common import unit_float
from fastformer.data.batch import IGNORE_INDEX
from fastformer.optim import AdamW
from fastformer.trainer import Trainer

HELP = "one training step: compiled model against the NumPy reference and PyTorch"
IMPLS = ("compiled", "numpy", "torch")
BF16_SIDES = {"compiled": "compiled-bf16", "torch": "torch-bf16"}  # --precision bf16: the side beside each
LABEL_SMOOTHING = 0.1
LR, WEIGHT_DECAY = 1e-3, 0.01


@contextlib.contextmanager
def numpy_kernels():
    """Within: every kernel the trainer, loss and optimizers pick through
    `fastformer._kernels.kernel` is the NumPy twin, as on a build without
    compiled kernels (the fallback `kernel` exists for)."""
    compiled = _kernels._ops
    _kernels._ops = None  # kernel() finds no compiled kernel of any name
    try:
        yield
    finally:
        _kernels._ops = compiled


def _trainer_side(cls, kwargs, state, batch, numpy_only, compute_dtype="float32"):
    model = cls(**kwargs, compute_dtype=compute_dtype)
    if state is not None:
        model.load_state_dict(state)
    trainer = Trainer(model, AdamW(model, lr=LR, weight_decay=WEIGHT_DECAY), label_smoothing=LABEL_SMOOTHING,
                      progress=False, world=distributed.World())  # one process, whatever launched it
    kernels = numpy_kernels if numpy_only else contextlib.nullcontext

    def step():
        with kernels():
            return float(trainer.train_step(batch)["loss"])

    bf16 = f", compute_dtype=bfloat16 ({ff.ops.bf16_path()})" if compute_dtype == "bfloat16" else ""
    return step, f"Trainer.train_step, {cls.__module__}.{cls.__qualname__}{bf16}"


def _torch(torch, kwargs, state, batch, autocast_bf16=False):
    import torch.nn.functional as F

    from fastformer.bench.torch_model import TorchTwin, twin_of

    model = twin_of(state, **kwargs) if state is not None else TorchTwin(**kwargs)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in (batch.src, batch.tgt_in, batch.tgt_out))
    src_mask = torch.from_numpy(batch.src_key_padding_mask)
    tgt_mask = torch.from_numpy(batch.tgt_key_padding_mask)
    vocab = kwargs["tgt_vocab_size"]

    def precision():
        if autocast_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad()
        with precision():
            logits = model(src, tgt_in, src_mask, tgt_mask)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=IGNORE_INDEX,
                               label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        opt.step()
        return loss.item()

    autocast = ", autocast bf16" if autocast_bf16 else ""
    return step, f"torch {torch.__version__} nn.Transformer{autocast}"


def make_side(impl, config, batch, dropout, state=None, torch=None):
    """(step function -> loss, description) of one implementation; `state`
    (a reference state_dict) gives the weights, None its own initialisation."""
    kwargs = config.model_kwargs(dropout)
    if impl in ("compiled", "compiled-bf16"):
        return _trainer_side(ff.Transformer, kwargs, state, batch, numpy_only=False,
                             compute_dtype="bfloat16" if impl == "compiled-bf16" else "float32")
    if impl == "numpy":
        return _trainer_side(ref.Transformer, kwargs, state, batch, numpy_only=True)
    return _torch(torch, kwargs, state, batch, autocast_bf16=impl == "torch-bf16")


def memory_probe(spec):
    """The peak-memory child's set-up (see harness.peak_memory): one step of
    a micro model first, so that what the libraries set up once (thread
    pools, autograd engine, kernel caches) is not counted as the
    configuration's memory; then two steps of the configuration, from just
    before its model is built (the second is the steady state: optimizer
    state exists)."""
    torch = harness.import_torch() if spec["impl"].startswith("torch") else None
    machine.set_all_threads(spec["threads"], torch)
    warm, _ = make_side(spec["impl"], CONFIGS["micro"], synthetic_batch(CONFIGS["micro"]), spec["dropout"],
                        torch=torch)
    warm()
    config = CONFIGS[spec["config"]]
    batch = synthetic_batch(config, padding=spec["padding"])

    def measured():
        step, _ = make_side(spec["impl"], config, batch, spec["dropout"], torch=torch)
        for _ in range(2):
            step()
    return measured


# ----- the benchmark -------------------------------------------------------------------


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs(",".join(PUBLIC_CONFIGS)),
                   help=f"comma-separated sizes from {', '.join(PUBLIC_CONFIGS)} (default: all)")
    p.add_argument("--impl", type=harness.impl_list(IMPLS), default=list(IMPLS),
                   help="comma-separated sides from compiled,numpy,torch (default: all; torch when installed)")
    harness.add_arguments(p, repeat=5, warmup=2, pause=0.2, what="steps")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: add fastformer's bf16 model and PyTorch bf16 autocast beside the fp32 sides "
                        "(the speedups are then fastformer bf16's; default fp32)")
    p.add_argument("--dropout", type=unit_float, default=0.1, help="dropout probability (default 0.1)")
    p.add_argument("--no-padding", action="store_true",
                   help="full-length rows (default: lengths from 3/4 to all of S and T, with padding masks)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
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
        harness.progress(f"  step {config.name} x{threads} round {r + 1}/{args.repeat}: {times}")

    harness.progress(f"step {config.name} x{threads}: warm-up ({args.warmup} steps per side)")
    samples = harness.interleaved(fns, args.repeat, args.warmup, args.pause, report=report)
    del fns
    flops = step_flops(config)
    tokens = int((batch.tgt_out != IGNORE_INDEX).sum())
    rows = []
    for impl in impls:
        t = harness.median(samples[impl])
        rows.append(dict(config=config.name, threads=threads, impl=impl, model=models[impl], ms_per_step=1e3 * t,
                         samples_ms=[1e3 * s for s in samples[impl]], target_tokens_per_step=tokens,
                         tokens_per_s=tokens / t, flops_per_step=flops, gflops=flops / t * 1e-9,
                         fraction_of_peak=None, first_loss=losses[impl][0], peak_memory_bytes=None))
    if not args.no_memory:
        for row in rows:
            harness.progress(f"step {config.name} x{threads}: peak memory of {row['impl']} (fresh process)")
            spec = dict(impl=row["impl"], config=config.name, threads=threads, dropout=args.dropout,
                        padding=not args.no_padding)
            mem = harness.peak_memory("step", spec, threads) or {}
            row["peak_memory_bytes"] = mem.get("peak_rise_bytes")
            row["baseline_rss_bytes"] = mem.get("baseline_rss_bytes")
    return rows


def _speedup_column(base):
    def cell(r):
        return "-" if r["compiled_speedup"] is None or r["impl"] == base else f"{r['compiled_speedup']:.2f}x"
    return Column("speedup", 8, cell)


def _columns(base):
    return [
        column("config", "config", width=7, left=True), column("thr", "threads", width=3),
        column("impl", "impl", width=13, left=True), column("ms/step", "ms_per_step", ".1f", 9),
        column("tok/s", "tokens_per_s", ".0f", 9), column("GFLOP/s", "gflops", ".1f", 8),
        Column("%peak", 6, lambda r: f"{100 * r['fraction_of_peak']:.1f}%"),
        Column("peak MiB", 9,
               lambda r: "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f}"),
        _speedup_column(base), column("loss", "first_loss", ".3f", 7),
    ]


def format_table(rows, base="compiled"):
    return harness.format_table(_columns(base), rows)


def with_precision(impls, precision):
    """The sides of a run: `impls`, and with precision "bf16" the bf16 side of
    each that has one, before it (the first is the speedup base)."""
    if precision != "bf16":
        return list(impls)
    return [name for impl in impls for name in ((BF16_SIDES[impl],) if impl in BF16_SIDES else ()) + (impl,)]


def summarize(rows, base="compiled"):
    """Speedups per (config, threads) of the `base` side, and thread scaling per (config, impl)."""
    speedups, scaling = harness.speedups(rows, "ms_per_step", base=base), []
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
    impls, torch = harness.sides(args.impl)
    impls = with_precision(impls, args.precision)
    base = impls[0] if impls[0].startswith("compiled") else "compiled"
    threads_list = harness.thread_counts(args)
    header = harness.start(args, threads_list, torch, bf16=args.precision == "bf16", dropout=args.dropout,
                           label_smoothing=LABEL_SMOOTHING, padding=not args.no_padding)
    print(f"median of {args.repeat} alternating steps per side after {args.warmup} warm-up; dropout "
          f"{args.dropout}, label smoothing {LABEL_SMOOTHING}, AdamW\n")
    rows = []
    with machine.threads_restored(torch):
        for threads in threads_list:
            used = machine.set_all_threads(threads, torch)
            if used["blas"] is None and "numpy" in impls:
                print(f"note: could not set numpy's BLAS threads to {threads} (it keeps its start-up count)")
            for config in args.config:
                machine.refresh_peak(header, threads)
                rows += _bench_config(config, threads, impls, args, torch)
    for config in dict.fromkeys(r["config"] for r in rows):
        print(f"{config}: {CONFIGS[config].describe()}, {step_flops(CONFIGS[config]) / 1e9:.1f} GFLOP/step")
    for row in rows:  # against the best peak seen (a busy moment only lowers a measurement), of its precision
        peaks = header["bf16_peak_gflops" if row["impl"].endswith("-bf16") else "fma_peak_gflops"]
        row["fraction_of_peak"] = row["gflops"] / peaks[str(row["threads"])]
    speedups, scaling = summarize(rows, base)
    print()
    print(format_table(rows, base))
    print("%peak against the fp32 FMA peak, best of the measurements before each configuration: " +
          ", ".join(f"{p:.1f} GFLOP/s ({t} thr)" for t, p in header["fma_peak_gflops"].items()))
    if "bf16_peak_gflops" in header:
        print(f"(bf16 rows: against the bf16 path's peak, {header['bf16_path']}: " +
              ", ".join(f"{p:.1f} GFLOP/s ({t} thr)" for t, p in header["bf16_peak_gflops"].items()) + ")")
    print()
    print(harness.format_speedups(speedups, "step", lambda s: f"{s['config']} x{s['threads']}", base))
    for s in scaling:
        print(f"{s['config']} {s['impl']}: {s['from_threads']} -> {s['to_threads']} threads {s['speedup']:.2f}x")
    configs = {c: CONFIGS[c]._asdict() for c in dict.fromkeys(r["config"] for r in rows)}
    harness.finish(args, {"header": header, "configs": configs, "results": rows, "speedups": speedups,
                          "scaling": scaling})
    if args.plot and speedups:
        plot(args.plot, speedups)
        print(f"wrote {args.plot}")
    return 0
