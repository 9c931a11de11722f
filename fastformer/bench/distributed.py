"""Data-parallel training steps: 1 rank x T threads against R ranks x T/R
threads on this machine, the same global batch and micro-batches (so the
same weights), and the communication each step costs.

    python -m fastformer.bench distributed [--config small,base] [--layouts 1x2,2x1]
        [--micro-batch-size N] [--steps 3] [--warmup 1] [--json PATH]

A step is `Trainer.train_step` on the configuration's synthetic batch: the
micro-batches' forward and backward (dropout 0.1, label smoothing 0.1), the
ordered gradient reduction, clipping and AdamW. Each layout runs in its own
`mpiexec` job, one after the other (they would contend for the cores side by
side); the table gives medians of the timed steps on rank 0.

Columns:
  ms/step      median wall time of a step
  efficiency   1-rank time / this time (1.0 = ranks cost nothing over threads)
  MiB sent     payload one rank sends per step: its micro-batches' gradient
               slices for the other shard owners, plus its shard to every other
               rank in the all-gather
  comm ms      time per step after the rank's last backward until the gradient
               is complete everywhere (waiting, folding, all-gather): the
               communication not hidden behind computation
  overlapped   fraction of the bytes a rank receives (shard slices and the
               all-gather) that had arrived while it was still computing
  same weights whether the layout's weights after the steps equal 1 rank's
               bitwise

The closing lines print the scaling model of README.md from these numbers.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

from fastformer.bench import harness
from fastformer.bench.configs import CONFIGS, PUBLIC_CONFIGS, parse_configs, synthetic_batch
from fastformer.commands.common import positive_int

HELP = "data-parallel steps: 1 rank x 2 threads against 2 ranks x 1 thread"
GBIT = 1e9 / 8  # bytes per second in one Gbit/s


def parse_layouts(text):
    """'1x2,2x1' -> [(ranks, threads), ...] (argparse type)."""
    try:
        layouts = [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        layouts = []
    if not layouts or any(len(l) != 2 or min(l) < 1 for l in layouts):
        raise argparse.ArgumentTypeError(f"expected RANKSxTHREADS[,...] such as 1x2,2x1, got {text!r}")
    return layouts


def add_arguments(p):
    p.add_argument("--config", type=parse_configs, default=parse_configs("small,base"), metavar="NAMES",
                   help=f"configurations: {', '.join(PUBLIC_CONFIGS)} (default small,base)")
    p.add_argument("--layouts", type=parse_layouts, default=parse_layouts("1x2,2x1"), metavar="RxT,...",
                   help="ranks x threads per rank; the first is the efficiency base (default 1x2,2x1)")
    p.add_argument("--micro-batch-size", type=positive_int, default=None,
                   help="examples per micro-batch (default: the configuration's batch / 4)")
    # no --threads and --pause: the layouts give the threads, and each layout runs alone
    harness.add_arguments(p, repeat=3, warmup=1, threads=None, what="steps per layout", repeat_aliases=("--steps",),
                          malloc=False)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # one rank of one layout (JSON spec)


def run(args):
    if args.worker:
        return _worker(json.loads(args.worker))
    from fastformer.commands.ranks import find_mpiexec

    mpiexec = find_mpiexec()
    if mpiexec is None:
        print('fastformer bench distributed: needs mpiexec and mpi4py: pip install "fastformer[mpi]"',
              file=sys.stderr)
        return 2
    header = harness.start(args, sorted({t for _, t in args.layouts}))
    rows = []
    for config in args.config:
        micro = args.micro_batch_size or max(1, config.batch // 4)
        print(f"\n{config.name}: {config.describe()}, micro-batches of {micro}")
        print(f"{'ranks x threads':>15} {'ms/step':>9} {'efficiency':>10} {'MiB sent':>9} {'comm ms':>8} "
              f"{'overlapped':>10} {'same weights':>12}")
        base = None
        for ranks, threads in args.layouts:
            harness.progress(f"{config.name} {ranks}x{threads} ...")
            spec = {"config": config.name, "micro": micro, "threads": threads, "steps": args.repeat,
                    "warmup": args.warmup}
            command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "fastformer.bench", "distributed",
                       "--worker", json.dumps(spec)]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            out = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row.update(config=config.name, ranks=ranks, threads=threads, micro_batch_size=micro)
            base = base or row
            row["efficiency"] = base["ms_per_step"] / row["ms_per_step"]
            row["same_weights"] = row["weights_sha256"] == base["weights_sha256"]
            rows.append(row)
            print(f"{f'{ranks} x {threads}':>15} {row['ms_per_step']:9.1f} {row['efficiency']:10.2f} "
                  f"{row['bytes_sent_per_step'] / 2**20:9.1f} {row['comm_ms_per_step']:8.1f} "
                  f"{_fraction(row):>10} {str(row['same_weights']):>12}")
    model = scaling_model(rows)
    if model:
        print("\nscaling model (a model, not a measurement): " + model["assumptions"])
        print(f"{'config':>8} {'node x':>7} {'nodes':>6} {'Gbit/s':>7} {'ms/step':>9} {'efficiency':>10}")
        for m in model["rows"]:
            print(f"{m['config']:>8} {m['node_speedup']:7d} {m['nodes']:6d} {m['gbit_s']:7d} "
                  f"{m['ms_per_step']:9.1f} {m['efficiency']:10.2f}")
    harness.finish(args, {"header": header, "rows": rows, "scaling_model": model})
    return 0


def _fraction(row):
    received = row["received_bytes_per_step"]
    return f"{row['overlapped']:.2f}" if received else "-"


def scaling_model(rows, nodes=(8, 16, 64), gbits=(25, 100), node_speedups=(1, 16)):
    """Predicted step time and efficiency for `nodes` nodes at `gbits` Gbit/s.

    From each configuration's first multi-rank row: a node is one rank
    computing k micro-batches (weak scaling: the global batch grows with
    the nodes), `node_speedup` times as fast as one rank computed its share
    here, and its optimizer step as well (1: a node like one rank here; 16:
    e.g. 16 such cores, perfectly scaled). Per step a node sends and receives (k + 1) x 4 P x (N - 1) / N
    bytes (k gradient slices to shard owners, then the all-gather) at the
    link's bandwidth, of which the measured `overlapped` fraction hides
    behind computation. No latency, no switch contention.
    """
    out, seen = [], set()
    for row in rows:
        if row["ranks"] < 2 or row["config"] in seen:
            continue
        seen.add(row["config"])
        k = row["micro_batches"] // row["ranks"]
        for speedup in node_speedups:
            compute = row["compute_ms_per_step"] / 1e3 / speedup
            update = row["update_ms_per_step"] / 1e3 / speedup
            for n in nodes:
                for g in gbits:
                    comm = (k + 1) * row["gradient_bytes"] * (n - 1) / n / (g * GBIT)
                    step = compute + update + (1 - row["overlapped"]) * comm
                    out.append({"config": row["config"], "node_speedup": speedup, "nodes": n, "gbit_s": g,
                                "ms_per_step": step * 1e3, "efficiency": (compute + update) / step})
    if not out:
        return None
    return {"rows": out,
            "assumptions": "one rank per node computing its k micro-batches (and stepping) node x as fast "
                           "as one rank did here; (k+1) x 4P x (N-1)/N bytes per node and step at the link's "
                           "bandwidth, the measured overlapped fraction hidden; no latency or contention"}


# ----- one rank of one layout ------------------------------------------------------------


def _worker(spec):
    import fastformer as ff
    from fastformer import distributed
    from fastformer.optim import AdamW
    from fastformer.trainer import Trainer

    world = distributed.init()
    ff.set_num_threads(spec["threads"])
    config = CONFIGS[spec["config"]]
    batch = synthetic_batch(config)
    model = ff.Transformer(**config.model_kwargs(dropout=0.1))
    trainer = Trainer(model, AdamW(model, lr=1e-3, weight_decay=0.01), clip_grad_norm=1.0, label_smoothing=0.1,
                      progress=False, micro_batch_size=spec["micro"], world=world)
    dp = trainer.plan_micro_batches(len(batch))
    step = {"step": lambda: trainer.train_step(batch)}
    harness.interleaved(step, 0, spec["warmup"])  # every rank steps alike: no pause
    stats = dict(dp.stats)
    timed = harness.interleaved(step, spec["steps"])["step"]
    delta = {k: (v - stats[k]) / spec["steps"] for k, v in dp.stats.items() if k != "steps"}
    step_ms = harness.median(timed) * 1e3
    received = delta["received_bytes"] + delta["gathered_bytes"]
    row = {"ms_per_step": step_ms, "step_ms_all": [t * 1e3 for t in timed],
           "compute_ms_per_step": delta["compute_s"] * 1e3, "comm_ms_per_step": delta["reduce_s"] * 1e3,
           "update_ms_per_step": max(0.0, step_ms - delta["compute_s"] * 1e3 - delta["reduce_s"] * 1e3),
           "bytes_sent_per_step": delta["bytes_sent"], "received_bytes_per_step": received,
           "overlapped": delta["received_early_bytes"] / received if received else 0.0,
           "micro_batches": dp.max_micro, "gradient_bytes": dp.grads.nbytes,
           "weights_sha256": hashlib.sha256(model.flat_parameters()[0].tobytes()).hexdigest()}
    if world.is_main:
        print(json.dumps(row), flush=True)
    return 0
