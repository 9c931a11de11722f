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
        [--tokens 64] [--threads 1,2] [--impl compiled,numpy,torch,ct2-onednn,ct2-mkl]
        [--repeat 5] [--json PATH]

All sides get the same weights and source batch (full length, no padding) in
eval mode (no dropout; torch under inference_mode). The generator's bias for
eos is pushed far down in the shared weights, so every side decodes exactly
`--tokens` tokens per row and the work is fixed. The table gives the median
time per decoding of the whole batch, generated tokens per second, the
compiled side's speedup (the other side's time over the compiled one's), and
the fraction of tokens equal to the compiled side's (decoding agrees unless
rounding flips a near tie).
"""
import tempfile

import numpy as np

import fastformer as ff
from fastformer import reference as ref
from fastformer.bench import common
from fastformer.bench.configs import CONFIGS, parse_configs
from fastformer.commands.common import nonnegative_int, positive_int
from fastformer.bench import ct2
from fastformer.data.vocab import BOS_ID, EOS_ID

DEFAULT_CONFIGS = "tiny,small"  # base and long: the reference's re-run forward takes minutes
IMPLS = ("compiled", "numpy", "torch") + tuple(ct2.BACKENDS)


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                   help=f"comma-separated model sizes from tiny,small,base,long (default {DEFAULT_CONFIGS}); "
                        "the source length is the configuration's S")
    p.add_argument("--batch", type=common.parse_threads, default=[16],
                   help="comma-separated batch sizes: sequences decoded together (default 16)")
    p.add_argument("--beam", type=common.parse_threads, default=[1],
                   help="comma-separated beam sizes, 1 = greedy (default 1; PyTorch's side is greedy only)")
    p.add_argument("--tokens", type=positive_int, default=64, help="tokens generated per sequence (default 64)")
    p.add_argument("--threads", type=common.parse_threads, default=None,
                   help="comma-separated thread counts (default: all cores)")
    p.add_argument("--impl", type=common.impl_list(IMPLS), default=list(IMPLS),
                   help=f"comma-separated sides from {','.join(IMPLS)} (default: all; torch and CTranslate2 "
                        "when installed)")
    p.add_argument("--repeat", type=positive_int, default=5, help="timed decodings per side (default 5)")
    p.add_argument("--warmup", type=nonnegative_int, default=1, help="untimed decodings per side first (default 1)")
    p.add_argument("--pause", type=float, default=0.2, help="seconds idle before each timed decoding (default 0.2)")
    p.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc as it is")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")


def _side(impl, kwargs, state, src, n_tokens, beam, threads, torch, ct2_dir):
    """(decode function -> (B, n_tokens) int64 array, description, cleanup or None)."""
    if impl in ("compiled", "numpy"):
        cls = ff.Transformer if impl == "compiled" else ref.Transformer
        model = cls(**kwargs)
        model.load_state_dict(state)
        model.eval()
        return (lambda: model.generate(src, n_tokens, BOS_ID, EOS_ID, beam),
                f"{cls.__module__}.{cls.__qualname__} generate", None)
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
                common.progress(f"  generate {config.name} B{batch} beam {beam} x{threads} round "
                                f"{r + 1}/{args.repeat}: {times}")

            common.progress(f"generate {config.name} B{batch} beam {beam} x{threads}: warm-up "
                            f"({args.warmup} per side)")
            samples = common.interleaved(fns, args.repeat, args.warmup, args.pause, report)
        finally:
            for cleanup in cleanups:
                cleanup()
    first = outputs[impls[0]]
    rows = []
    for impl in impls:
        t = common.median(samples[impl])
        out = outputs[impl]
        n = int(out.size)
        rows.append(dict(config=config.name, threads=threads, impl=impl, model=models[impl], batch=batch,
                         beam=beam, src_len=config.src_len, new_tokens=int(out.shape[1]), ms=1e3 * t,
                         samples_ms=[1e3 * s for s in samples[impl]], tokens_per_s=n / t,
                         agreement=float(np.mean(out == first)) if out.shape == first.shape else None))
    return rows


def speedups(rows):
    """Per (config, threads, batch, beam) with a compiled row: {"config", "threads", "batch", "beam",
    "compiled_vs_<impl>"}: the other side's time over the compiled side's (> 1: compiled is faster).
    Also sets each row's "compiled_speedup" (None where no compiled row ran)."""
    out = []
    keys = ("config", "threads", "batch", "beam")
    for key in dict.fromkeys(tuple(r[k] for k in keys) for r in rows):
        by = {r["impl"]: r for r in rows if tuple(r[k] for k in keys) == key}
        base = by.get("compiled")
        for r in by.values():
            r["compiled_speedup"] = r["ms"] / base["ms"] if base else None
        if base:
            entry = dict(zip(keys, key))
            entry.update({f"compiled_vs_{k}": by[k]["ms"] / base["ms"] for k in by if k != "compiled"})
            out.append(entry)
    return out


def format_speedups(entries):
    """'tiny B16 beam 4 x2: compiled decoding is 3.10x numpy, 0.80x ct2-onednn' lines."""
    lines = []
    for s in entries:
        parts = [f"{v:.2f}x {k[len('compiled_vs_'):]}" for k, v in s.items() if k.startswith("compiled_vs_")]
        if parts:
            lines.append(f"{s['config']} B{s['batch']} beam {s['beam']} x{s['threads']}: compiled decoding is "
                         + ", ".join(parts))
    return "\n".join(lines)


def format_table(rows):
    head = (f"{'config':<7} {'thr':>3} {'impl':<10} {'batch':>5} {'beam':>4} {'tokens':>6} {'ms':>10} "
            f"{'tok/s':>9} {'speedup':>8} {'agree':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = "-" if r["compiled_speedup"] is None or r["impl"] == "compiled" else f"{r['compiled_speedup']:.2f}x"
        agree = "-" if r["agreement"] is None else f"{100 * r['agreement']:.0f}%"
        lines.append(f"{r['config']:<7} {r['threads']:>3} {r['impl']:<10} {r['batch']:>5} {r['beam']:>4} "
                     f"{r['new_tokens']:>6} "
                     f"{r['ms']:>10.1f} {r['tokens_per_s']:>9.0f} {sp:>8} {agree:>6}")
    return "\n".join(lines)


def run(args):
    impls, torch = common.sides(args.impl)
    if any(i in ct2.BACKENDS for i in impls) and not ct2.available():
        print("note: ctranslate2 is not installed: the CTranslate2 sides are skipped")
        impls = [i for i in impls if i not in ct2.BACKENDS]
    threads_list = args.threads or [ff.get_num_threads()]
    malloc_kept = False if args.default_malloc else common.keep_freed_memory()
    header = common.machine_header(threads_list, torch, malloc_kept)
    header.update(repeat=args.repeat, warmup=args.warmup, pause_s=args.pause, batch=args.batch, beam=args.beam,
                  new_tokens=args.tokens, norm_first=any(i in ct2.BACKENDS for i in impls))
    common.print_header(header)
    print(f"decoding of {args.tokens} tokens (beam {', '.join(map(str, args.beam))}; 1 = greedy) for batches of "
          f"{', '.join(map(str, args.batch))}; median of {args.repeat} alternating runs per side after "
          f"{args.warmup} warm-up\n")
    rows = []
    with common.threads_restored(torch):
        for threads in threads_list:
            common.set_all_threads(threads, torch)
            for config in args.config:
                for beam in args.beam:
                    for batch in args.batch:
                        rows += _bench_case(config, threads, impls, args, torch, batch, beam)
    for config in dict.fromkeys(r["config"] for r in rows):
        print(f"{config}: {CONFIGS[config].describe(batch=False)}")
    print()
    ratios = speedups(rows)
    print(format_table(rows))
    print()
    print(format_speedups(ratios))
    if args.json:
        configs = {c: CONFIGS[c]._asdict() for c in dict.fromkeys(r["config"] for r in rows)}
        common.write_json(args.json, {"header": header, "configs": configs, "results": rows,
                                      "speedups": ratios})
        print(f"wrote {args.json}")
    return 0
