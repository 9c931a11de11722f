"""Decoding (greedy and beam search), side by side: `fastformer.Transformer.generate`
(key/value cache, compiled beam search), the NumPy reference (its `generate`:
the reference search re-running the whole forward on the growing prefix),
PyTorch's usual greedy loop (encoder once, then the decoder re-run on the
growing prefix for every token; `fastformer.bench.torch_model`; greedy only),
and CTranslate2 when it is installed, with each of its CPU backends
(`ct2-onednn`: CT2_USE_MKL=0, `ct2-mkl`: its default) in a worker process
on the same weights converted exactly (`fastformer.bench.ct2`; the model is
then pre-norm, the layout CTranslate2 represents).

    python -m fastformer.bench generate [--config tiny,small] [--batch 16,64] [--beam 1,4]
        [--tokens 64] [--threads 1,2] [--impl compiled,compiled-bf16,numpy,torch,ct2-onednn,ct2-mkl]
        [--repeat 5] [--json PATH]

All sides get the same weights and source batch (full length, no padding) in
eval mode (no dropout; torch under inference_mode). The generator's bias for
eos is pushed far down in the shared weights, so every side decodes exactly
`--tokens` tokens per row and the work is fixed. The table gives the median
time per decoding of the whole batch, generated tokens per second, the
compiled side's speedup (the other side's time over the compiled one's), and
the fraction of tokens equal to the compiled side's (decoding agrees unless
rounding flips a near tie). `compiled-bf16` (asked for by --impl, not run by
default) is the compiled model with compute_dtype="bfloat16": bf16 weight
panels, half the bytes each step streams; an extra row, not an fp32 result.
"""
import tempfile

import numpy as np

import fastformer as ff
from fastformer import reference as ref
from fastformer.bench import ct2, harness, machine
from fastformer.bench.configs import CONFIGS, parse_configs
from fastformer.bench.harness import Column, column
from fastformer.commands.common import positive_int
from fastformer.data.vocab import BOS_ID, EOS_ID

HELP = "greedy decoding: KV-cached generate against NumPy and PyTorch loops"
DEFAULT_CONFIGS = "tiny,small"  # base and long: the reference's re-run forward takes minutes
IMPLS = ("compiled", "compiled-bf16", "numpy", "torch") + tuple(ct2.BACKENDS)
DEFAULT_IMPLS = [i for i in IMPLS if i != "compiled-bf16"]


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                   help=f"comma-separated model sizes from tiny,small,base,long (default {DEFAULT_CONFIGS}); "
                        "the source length is the configuration's S")
    p.add_argument("--batch", type=harness.parse_threads, default=[16],
                   help="comma-separated batch sizes: sequences decoded together (default 16)")
    p.add_argument("--beam", type=harness.parse_threads, default=[1],
                   help="comma-separated beam sizes, 1 = greedy (default 1; PyTorch's side is greedy only)")
    p.add_argument("--tokens", type=positive_int, default=64, help="tokens generated per sequence (default 64)")
    p.add_argument("--impl", type=harness.impl_list(IMPLS), default=DEFAULT_IMPLS,
                   help=f"comma-separated sides from {','.join(IMPLS)} (default: all but compiled-bf16; torch "
                        "and CTranslate2 when installed)")
    harness.add_arguments(p, repeat=5, warmup=1, pause=0.2, what="decodings")


def _side(impl, kwargs, state, src, n_tokens, beam, threads, torch, ct2_dir):
    """(decode function -> (B, n_tokens) int64 array, description, cleanup or None)."""
    if impl in ("compiled", "compiled-bf16", "numpy"):
        cls = ref.Transformer if impl == "numpy" else ff.Transformer
        bf16 = impl == "compiled-bf16"
        model = cls(**kwargs, compute_dtype="bfloat16" if bf16 else "float32")
        model.load_state_dict(state)
        model.eval()
        return (lambda: model.generate(src, n_tokens, BOS_ID, EOS_ID, beam),
                f"{cls.__module__}.{cls.__qualname__} generate" + (", compute_dtype=bfloat16" if bf16 else ""),
                None)
    if impl in ct2.BACKENDS:
        worker = ct2.Worker(impl, ct2_dir, threads)
        return (lambda: worker.decode(src, beam, n_tokens), f"ctranslate2 {worker.version} fp32 ({impl})",
                worker.close)
    from fastformer.bench.torch_model import greedy_decode, twin_of

    model = twin_of(state, **kwargs)
    model.eval()
    src_t = torch.from_numpy(src)
    return (lambda: greedy_decode(model, src_t, n_tokens, BOS_ID, EOS_ID).numpy(),
            f"torch {torch.__version__} decoder re-run on the prefix", None)


def _bench_case(config, threads, impls, args, torch, batch, beam):
    kwargs = config.model_kwargs(dropout=0.0, max_len=args.tokens + 1)
    if any(i in ct2.BACKENDS for i in impls):
        kwargs["norm_first"] = True  # the layout CTranslate2 represents (with final norms)
    state = ref.Transformer(**kwargs).state_dict()
    state["generator.bias"][EOS_ID] = -1e4  # never chosen: every row decodes exactly --tokens tokens
    rng = np.random.default_rng(0)
    src = rng.integers(EOS_ID + 1, config.vocab, (batch, config.src_len)).astype(np.int64)
    impls = [i for i in impls if i != "torch" or beam == 1]
    fns, outputs, models, cleanups = {}, {}, {}, []
    with tempfile.TemporaryDirectory() as ct2_dir:
        if any(i in ct2.BACKENDS for i in impls):
            ct2.convert(state, kwargs, ref.sinusoidal_positions(kwargs["max_len"], config.d_model, np.float32),
                        ct2_dir)
        try:
            for impl in impls:
                fn, models[impl], cleanup = _side(impl, kwargs, state, src, args.tokens, beam, threads, torch,
                                                  ct2_dir)
                fns[impl] = (lambda f, name: lambda: outputs.__setitem__(name, f()))(fn, impl)
                if cleanup:
                    cleanups.append(cleanup)

            def report(r, last):
                times = "  ".join(f"{k} {1e3 * v:.0f} ms" for k, v in last.items())
                harness.progress(f"  generate {config.name} B{batch} beam {beam} x{threads} round "
                                 f"{r + 1}/{args.repeat}: {times}")

            harness.progress(f"generate {config.name} B{batch} beam {beam} x{threads}: warm-up "
                             f"({args.warmup} per side)")
            samples = harness.interleaved(fns, args.repeat, args.warmup, args.pause, report=report)
        finally:
            for cleanup in cleanups:
                cleanup()
    first = outputs[impls[0]]
    rows = []
    for impl in impls:
        t = harness.median(samples[impl])
        out = outputs[impl]
        n = int(out.size)
        rows.append(dict(config=config.name, threads=threads, impl=impl, model=models[impl], batch=batch,
                         beam=beam, src_len=config.src_len, new_tokens=int(out.shape[1]), ms=1e3 * t,
                         samples_ms=[1e3 * s for s in samples[impl]], tokens_per_s=n / t,
                         agreement=float(np.mean(out == first)) if out.shape == first.shape else None))
    return rows


KEYS = ("config", "threads", "batch", "beam")


def _speedup(r):
    return "-" if r["compiled_speedup"] is None or r["impl"] == "compiled" else f"{r['compiled_speedup']:.2f}x"


COLUMNS = [
    column("config", "config", width=7, left=True), column("thr", "threads", width=3),
    column("impl", "impl", width=13, left=True), column("batch", "batch", width=5), column("beam", "beam", width=4),
    column("tokens", "new_tokens", width=6), column("ms", "ms", ".1f", 10), column("tok/s", "tokens_per_s", ".0f", 9),
    Column("speedup", 8, _speedup),
    Column("agree", 6, lambda r: "-" if r["agreement"] is None else f"{100 * r['agreement']:.0f}%"),
]


def format_table(rows):
    return harness.format_table(COLUMNS, rows)


def run(args):
    impls, torch = harness.sides(args.impl)
    if any(i in ct2.BACKENDS for i in impls) and not ct2.available():
        print("note: ctranslate2 is not installed: the CTranslate2 sides are skipped")
        impls = [i for i in impls if i not in ct2.BACKENDS]
    threads_list = harness.thread_counts(args)
    header = harness.start(args, threads_list, torch, batch=args.batch, beam=args.beam, new_tokens=args.tokens,
                           norm_first=any(i in ct2.BACKENDS for i in impls))
    print(f"decoding of {args.tokens} tokens (beam {', '.join(map(str, args.beam))}; 1 = greedy) for batches of "
          f"{', '.join(map(str, args.batch))}; median of {args.repeat} alternating runs per side after "
          f"{args.warmup} warm-up\n")
    rows = []
    with machine.threads_restored(torch):
        for threads in threads_list:
            machine.set_all_threads(threads, torch)
            for config in args.config:
                for beam in args.beam:
                    for batch in args.batch:
                        rows += _bench_case(config, threads, impls, args, torch, batch, beam)
    for config in dict.fromkeys(r["config"] for r in rows):
        print(f"{config}: {CONFIGS[config].describe(batch=False)}")
    print()
    ratios = harness.speedups(rows, "ms", KEYS)
    print(format_table(rows))
    print()
    print(harness.format_speedups(ratios, "decoding",
                                  lambda s: f"{s['config']} B{s['batch']} beam {s['beam']} x{s['threads']}"))
    configs = {c: CONFIGS[c]._asdict() for c in dict.fromkeys(r["config"] for r in rows)}
    harness.finish(args, {"header": header, "configs": configs, "results": rows, "speedups": ratios})
    return 0
