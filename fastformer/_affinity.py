"""The CPUs this process may run on, as it started.

Read before the OpenMP runtime loads: with OMP_PROC_BIND set, libgomp pins
the main thread to its first place as it loads, and every child process
(benchmark workers, MPI ranks) would inherit that one CPU and run one thread.
Children started with `preexec_fn=restore` get the start-up set back."""
import os

try:
    INITIAL = frozenset(os.sched_getaffinity(0))
except (AttributeError, OSError):  # not Linux
    INITIAL = None


def restore():
    """preexec_fn for a child process: the CPU set this process started with."""
    if INITIAL is not None:
        os.sched_setaffinity(0, INITIAL)
