"""Greedy decoding, side by side: `fastformer.Transformer.generate` (key/value
cache), the NumPy reference (its `generate` if it has one, else
`fastformer.decoding.greedy_decode`, which re-runs the whole forward on the
growing prefix) and PyTorch's usual loop (encoder once, then the decoder
re-run on the growing prefix for every token; `fastformer.bench.torch_model`).

    python -m fastformer.bench generate [--config tiny,small] [--batch 16] [--tokens 64]
        [--threads 1,2] [--impl compiled,numpy,torch] [--repeat 5] [--json PATH]

All sides get the same weights and source batch (full length, no padding) in
eval mode (no dropout; torch under inference_mode). The generator's bias for
eos is pushed far down in the shared weights, so every side decodes exactly
`--tokens` tokens per row and the work is fixed. The table gives the median
time per decoding of the whole batch, generated tokens per second, the
compiled side's speedup, and the fraction of tokens equal to the compiled
side's (greedy decoding agrees unless rounding flips a near tie).
"""
import numpy as np

import fastformer as ff
from fastformer import reference as ref
from fastformer.bench import common
from fastformer.bench.configs import CONFIGS, parse_configs
from fastformer.commands.common import nonnegative_int, positive_int
from fastformer.bench.step import IMPLS, parse_impls
from fastformer.data.vocab import BOS_ID, EOS_ID
from fastformer.decoding import decode

DEFAULT_CONFIGS = "tiny,small"  # base and long: the reference's re-run forward takes minutes


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                   help=f"comma-separated model sizes from tiny,small,base,long (default {DEFAULT_CONFIGS}); "
                        "the source length is the configuration's S")
    p.add_argument("--batch", type=positive_int, default=16, help="sequences decoded together (default 16)")
    p.add_argument("--tokens", type=positive_int, default=64, help="tokens generated per sequence (default 64)")
    p.add_argument("--threads", type=common.parse_threads, default=None,
                   help="comma-separated thread counts (default: all cores)")
    p.add_argument("--impl", type=parse_impls, default=list(IMPLS),
                   help="comma-separated sides from compiled,numpy,torch (default: all; torch when installed)")
    p.add_argument("--repeat", type=positive_int, default=5, help="timed decodings per side (default 5)")
    p.add_argument("--warmup", type=nonnegative_int, default=1, help="untimed decodings per side first (default 1)")
    p.add_argument("--pause", type=float, default=0.2, help="seconds idle before each timed decoding (default 0.2)")
    p.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc as it is")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")


def _side(impl, kwargs, state, src, n_tokens, torch):
    """(decode function -> (B, n_tokens) int64 array, description)."""
    if impl in ("compiled", "numpy"):
        cls = ff.Transformer if impl == "compiled" else ref.Transformer
        model = cls(**kwargs)
        model.load_state_dict(state)
        model.eval()
        return (lambda: decode(model, src, n_tokens, BOS_ID, EOS_ID),
                f"{cls.__module__}.{cls.__qualname__} generate")
    from fastformer.bench.torch_model import greedy_decode, twin_of

    model = twin_of(state, **kwargs)
    model.eval()
    src_t = torch.from_numpy(src)
    return (lambda: greedy_decode(model, src_t, n_tokens, BOS_ID, EOS_ID).numpy(),
            f"torch {torch.__version__} decoder re-run on the prefix")


def _bench_config(config, threads, impls, args, torch):
    kwargs = config.model_kwargs(dropout=0.0, max_len=args.tokens + 1)
    state = ref.Transformer(**kwargs).state_dict()
    state["generator.bias"][EOS_ID] = -1e4  # never chosen: every row decodes exactly --tokens tokens
    rng = np.random.default_rng(0)
    src = rng.integers(EOS_ID + 1, config.vocab, (args.batch, config.src_len)).astype(np.int64)
    fns, outputs, models = {}, {}, {}
    for impl in impls:
        fn, models[impl] = _side(impl, kwargs, state, src, args.tokens, torch)
        fns[impl] = (lambda f, name: lambda: outputs.__setitem__(name, f()))(fn, impl)

    def report(r, last):
        times = "  ".join(f"{k} {1e3 * v:.0f} ms" for k, v in last.items())
        common.progress(f"  generate {config.name} x{threads} round {r + 1}/{args.repeat}: {times}")

    common.progress(f"generate {config.name} x{threads}: warm-up ({args.warmup} per side)")
    samples = common.interleaved(fns, args.repeat, args.warmup, args.pause, report)
    first = outputs[impls[0]]
    rows = []
    for impl in impls:
        t = common.median(samples[impl])
        out = outputs[impl]
        n = int(out.size)
        rows.append(dict(config=config.name, threads=threads, impl=impl, model=models[impl], batch=args.batch,
                         src_len=config.src_len, new_tokens=int(out.shape[1]), ms=1e3 * t,
                         samples_ms=[1e3 * s for s in samples[impl]], tokens_per_s=n / t,
                         agreement=float(np.mean(out == first)) if out.shape == first.shape else None))
    return rows


def format_table(rows):
    head = (f"{'config':<7} {'thr':>3} {'impl':<9} {'batch':>5} {'tokens':>6} {'ms':>10} {'tok/s':>9} "
            f"{'speedup':>8} {'agree':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = "-" if r["compiled_speedup"] is None or r["impl"] == "compiled" else f"{r['compiled_speedup']:.2f}x"
        agree = "-" if r["agreement"] is None else f"{100 * r['agreement']:.0f}%"
        lines.append(f"{r['config']:<7} {r['threads']:>3} {r['impl']:<9} {r['batch']:>5} {r['new_tokens']:>6} "
                     f"{r['ms']:>10.1f} {r['tokens_per_s']:>9.0f} {sp:>8} {agree:>6}")
    return "\n".join(lines)


def run(args):
    impls, torch = common.sides(args.impl)
    threads_list = args.threads or [ff.get_num_threads()]
    malloc_kept = False if args.default_malloc else common.keep_freed_memory()
    header = common.machine_header(threads_list, torch, malloc_kept)
    header.update(repeat=args.repeat, warmup=args.warmup, pause_s=args.pause, batch=args.batch,
                  new_tokens=args.tokens)
    common.print_header(header)
    print(f"greedy decoding of {args.tokens} tokens for a batch of {args.batch}; "
          f"median of {args.repeat} alternating runs per side after {args.warmup} warm-up\n")
    rows = []
    with common.threads_restored(torch):
        for threads in threads_list:
            common.set_all_threads(threads, torch)
            for config in args.config:
                rows += _bench_config(config, threads, impls, args, torch)
    for config in dict.fromkeys(r["config"] for r in rows):
        print(f"{config}: {CONFIGS[config].describe(batch=False)}")
    print()
    speedups = common.compiled_speedups(rows, "ms")
    print(format_table(rows))
    print()
    print(common.format_speedups(speedups, "decoding"))
    if args.json:
        configs = {c: CONFIGS[c]._asdict() for c in dict.fromkeys(r["config"] for r in rows)}
        common.write_json(args.json, {"header": header, "configs": configs, "results": rows,
                                      "speedups": speedups})
        print(f"wrote {args.json}")
    return 0
