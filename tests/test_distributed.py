"""Data-parallel training: micro-batches reduced in a fixed order, so 1, 2 and
3 MPI ranks train bitwise the same; faults end the job; bad setups are refused."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastformer as ff
from fastformer.__main__ import main as cli
from fastformer.data import SyntheticTask
from fastformer.data.batch import make_batch
from fastformer.data_parallel import block_bounds, check_batch_split, micro_batch, shard_bounds
from fastformer.distributed import World
from fastformer.optim import AdamW
from fastformer.trainer import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mpi", "train_small.py")
TIMEOUT_S = 60  # the bound for a job with a failed rank to end by itself


def run(command, timeout=TIMEOUT_S):
    """Run `command` in its own process group -> CompletedProcess; on timeout the whole
    group is killed and the test fails (a hang is the bug these tests look for)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{command} did not end within {timeout} s")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def ranks(mpiexec, n, *command):
    return [mpiexec, "-n", str(n), *command]


def small(checkpoint, *extra):
    return [sys.executable, SCRIPT, "--checkpoint", str(checkpoint), *extra]


def outcome(checkpoint):
    """What must be bitwise the same: the checkpoint's tensors (by sha256) and the losses."""
    with open(os.path.join(checkpoint, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(checkpoint, "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    files = {kind: entry["sha256"] for kind, entry in manifest["files"].items()}
    return {"step": manifest["step"], "rng_step": manifest["model"]["rng_step"], "files": files,
            "history": [(e["step"], e["loss"], e["lr"], e.get("grad_norm")) for e in history]}


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The single-process run (no MPI) of the same micro-batches."""
    path = tmp_path_factory.mktemp("alone")
    result = run(small(path))
    assert result.returncode == 0, result.stderr
    return outcome(path)


# ----- without MPI ------------------------------------------------------------------


def test_batch_split_refuses_what_does_not_divide():
    assert check_batch_split(24, 4, 3) == 6
    with pytest.raises(ValueError, match=r"not a multiple of the micro-batch size 5.*\(1, 2, 3, 4, 6, 8, 12, 24\)"):
        check_batch_split(24, 5, 1)
    with pytest.raises(ValueError, match=r"6 micro-batches .* over 4 ranks.*divides 6 \(1, 2, 3, 6\).*multiple of 16"):
        check_batch_split(24, 4, 4)


def test_micro_batch_is_the_batch_of_its_examples():
    rng = np.random.default_rng(0)
    sources = [list(rng.integers(3, 9, size=n)) for n in (5, 1, 7, 2, 3, 6)]
    targets = [list(rng.integers(3, 9, size=n)) for n in (2, 4, 1, 6, 3, 2)]
    whole = make_batch(sources, targets)
    for start, stop in [(0, 2), (2, 4), (4, 6), (1, 2)]:
        part, wanted = micro_batch(whole, start, stop), make_batch(sources[start:stop], targets[start:stop])
        for got, want in zip(part, wanted):
            np.testing.assert_array_equal(got, want)


def test_shards_and_blocks_cover_everything():
    for size, parts in [(10, 3), (1000, 3), (17, 1), (5, 4)]:
        cuts = shard_bounds(size, parts)
        assert cuts[0] == 0 and cuts[-1] == size and cuts == sorted(cuts) and len(cuts) == parts + 1
    assert block_bounds(6, 3) == [0, 2, 4, 6]
    assert block_bounds(3, 2) == [0, 1, 3]


def _trained(micro_batch_size, steps=3):
    ff.set_num_threads(1)
    task = SyntheticTask("reverse", batch_size=8, seed=0)
    V = len(task.vocab)
    model = ff.Transformer(V, V, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=32, dropout=0.1, max_len=12)
    trainer = Trainer(model, AdamW(model, lr=1e-3), clip_grad_norm=1.0, progress=False, log_every=1,
                      micro_batch_size=micro_batch_size, world=World())
    history = trainer.fit(task, steps=steps)
    return model.flat_parameters()[0].copy(), [e["loss"] for e in history]


def test_one_micro_batch_is_the_plain_step(threads):
    """micro_batch_size = batch size takes the data-parallel path and changes nothing."""
    plain, plain_losses = _trained(None)
    micro, micro_losses = _trained(8)
    np.testing.assert_array_equal(micro, plain)
    assert micro_losses == plain_losses
    split, _ = _trained(2)
    assert not np.array_equal(split, plain)  # 4 micro-batches: other dropout masks, other sums


# ----- over MPI ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_ranks_train_bitwise_as_one_process(mpiexec, alone, tmp_path, n):
    result = run(ranks(mpiexec, n, *small(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert outcome(tmp_path) == alone


def test_killed_rank_ends_the_job_and_the_run_resumes(mpiexec, alone, tmp_path):
    start = time.monotonic()
    result = run(ranks(mpiexec, 2, *small(tmp_path, "--die-rank", "1", "--die-at-step", "6")))
    assert result.returncode != 0
    assert time.monotonic() - start < TIMEOUT_S
    assert outcome(tmp_path)["step"] == 4  # the last checkpoint before the kill, intact
    # Resume on another rank count: the run continues bit for bit.
    result = run(ranks(mpiexec, 3, *small(tmp_path, "--resume")))
    assert result.returncode == 0, result.stderr
    assert outcome(tmp_path) == alone


def test_rank_that_raises_ends_the_job(mpiexec, tmp_path):
    start = time.monotonic()
    result = run(ranks(mpiexec, 3, *small(tmp_path, "--raise-rank", "2", "--raise-at-step", "1")))
    assert result.returncode != 0
    assert time.monotonic() - start < TIMEOUT_S
    assert "rank 2 fails at step 1" in result.stderr


def test_rank_that_hangs_ends_the_job(mpiexec, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTFORMER_RANK_TIMEOUT", "3")
    start = time.monotonic()
    result = run(ranks(mpiexec, 2, *small(tmp_path, "--hang-rank", "0", "--hang-at-step", "2")))
    assert result.returncode != 0
    assert time.monotonic() - start < TIMEOUT_S
    assert "rank 1 of 2 waited 3 s for rank 0" in result.stderr


TINY = ["train", "--task", "reverse", "--steps", "4", "--batch-size", "12", "--micro-batch-size", "2",
        "--dropout", "0.1", "--d-model", "16", "--nhead", "2", "--layers", "1", "--ff", "32",
        "--eval-every", "4", "--no-progress", "--threads", "1"]


def test_cli_nproc_trains_as_one_process(mpiexec, tmp_path, threads):
    assert cli(TINY + ["--checkpoint", str(tmp_path / "one")]) == 0
    result = run([sys.executable, "-m", "fastformer", *TINY, "--nproc", "3", "--checkpoint",
                  str(tmp_path / "three")])
    assert result.returncode == 0, result.stderr
    one, three = outcome(tmp_path / "one"), outcome(tmp_path / "three")
    assert one["files"] == three["files"]
    assert one["history"][:-1] == three["history"][:-1]  # train entries (the last adds eval)
    assert result.stderr.count("fastformer train:") == 1  # rank 0 alone reports


def test_ranks_started_differently_are_refused(mpiexec, tmp_path):
    command = [sys.executable, "-m", "fastformer", *TINY, "--checkpoint", str(tmp_path)]
    result = run([mpiexec, "-n", "1", *command, "--seed", "0", ":", "-n", "1", *command, "--seed", "1"])
    assert result.returncode == 2
    assert result.stderr.count("ranks were not started alike") == 1
    assert not os.path.exists(tmp_path / "manifest.json")


def test_batch_that_does_not_share_out_is_refused(mpiexec, tmp_path):
    result = run(ranks(mpiexec, 4, sys.executable, "-m", "fastformer", *TINY, "--checkpoint", str(tmp_path)))
    assert result.returncode == 2
    assert "6 micro-batches of 2 (batch size 12) do not share out evenly over 4 ranks" in result.stderr
    assert "(1, 2, 3, 6)" in result.stderr


def test_bench_distributed_runs_and_layouts_agree(mpiexec, tmp_path, capsys):
    from fastformer.bench.__main__ import main as bench_main

    path = tmp_path / "distributed.json"
    assert bench_main(["distributed", "--config", "micro", "--layouts", "1x1,2x1", "--steps", "1",
                       "--warmup", "0", "--json", str(path)]) == 0
    assert "scaling model" in capsys.readouterr().out
    data = json.loads(path.read_text())
    one, two = data["rows"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert one["bytes_sent_per_step"] == 0 and two["bytes_sent_per_step"] > 0
    assert two["same_weights"] and 0 <= two["overlapped"] <= 1
    assert {(m["nodes"], m["gbit_s"]) for m in data["scaling_model"]["rows"]} == {
        (n, g) for n in (8, 16, 64) for g in (25, 100)}


class _Node:
    """A node communicator stand-in: every rank on the node sees `cpus`."""

    def __init__(self, cpus, size):
        self.cpus, self.size = cpus, size

    def allgather(self, value):
        return [self.cpus] * self.size


def test_ranks_on_a_node_get_disjoint_cores():
    from fastformer.distributed import share_cores

    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    try:
        mine = []
        for rank in range(2):
            world = World(rank, 2, rank, 2, comm=None, node_comm=_Node(cpus, 2))
            assert share_cores(world) == max(1, len(cpus) // 2)
            mine.append(os.sched_getaffinity(0))
            os.sched_setaffinity(0, before)
        if len(cpus) >= 2:
            assert not mine[0] & mine[1]
        # Ranks the launcher bound already keep their binding.
        bound = World(0, 2, 0, 2, comm=None, node_comm=type("Bound", (), {"allgather": lambda s, v: [v, []]})())
        assert share_cores(bound) == len(cpus) and os.sched_getaffinity(0) == before
    finally:
        os.sched_setaffinity(0, before)
