"""Which process of a data-parallel job this is: MPI rank and world size.

A process started by an MPI launcher (`mpiexec`, `mpirun`, `srun`) joins
MPI_COMM_WORLD through mpi4py (`pip install "fastformer[mpi]"`); any other
process is rank 0 of a world of one and never imports mpi4py.

    from fastformer import distributed
    distributed.init()            # idempotent; the Trainer calls it
    distributed.rank(), distributed.world_size(), distributed.is_main()

In a world of several ranks an uncaught exception in any rank aborts the
whole job (MPI_Abort), so no rank waits forever for one that has gone.
"""
import os
import sys
import time
import traceback

ABORT_GRACE_S = 0.5

# Variables the common launchers set in every process they start.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")

_world = None


class World:
    """This process's place in the job.

    rank / size: in MPI_COMM_WORLD; local_rank / local_size: among the ranks
    on this node; comm: the mpi4py communicator, or None for a world of one.
    """

    def __init__(self, rank=0, size=1, local_rank=0, local_size=1, comm=None, node_comm=None):
        self.rank, self.size = rank, size
        self.local_rank, self.local_size = local_rank, local_size
        self.comm, self.node_comm = comm, node_comm

    @property
    def is_main(self):
        """Rank 0: the one that writes checkpoints, history and the progress bar."""
        return self.rank == 0

    def abort(self, code=1):
        """End every rank of the job now with exit status `code` (no-op alone)."""
        if self.comm is not None and self.size > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            # MPI_Abort kills the launcher's forwarding of our output too: give it
            # a moment to pass on the message that says why the job ends.
            time.sleep(ABORT_GRACE_S)
            self.comm.Abort(code)

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size}, local {self.local_rank}/{self.local_size})"


def launched_by_mpi():
    """True when an MPI launcher started this process."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def init():
    """Join the MPI job this process was launched in (once) -> World."""
    global _world
    if _world is not None:
        return _world
    if not launched_by_mpi():
        _world = World()
        return _world
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("this process was started by an MPI launcher but mpi4py is missing: "
                          'pip install "fastformer[mpi]"') from None
    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    _world = World(comm.rank, comm.size, node.rank, node.size, comm, node)
    if comm.size > 1:
        _abort_on_uncaught_exception(_world)
    return _world


def world():
    """The World of this process (joins MPI on first use)."""
    return init()


def rank():
    return init().rank


def world_size():
    return init().size


def is_main():
    return init().is_main


def _abort_on_uncaught_exception(world):
    previous = sys.excepthook

    def hook(kind, value, tb):
        traceback.print_exception(kind, value, tb)
        print(f"fastformer: rank {world.rank} of {world.size} failed; aborting the job", file=sys.stderr)
        world.abort(1)
        previous(kind, value, tb)

    sys.excepthook = hook


def share_cores(world):
    """Pin this rank to its own share of the node's cores -> its thread count.

    The ranks on a node split the cores they may all run on into disjoint
    slices (cores / ranks-on-node each, at least 1), so no rank
    oversubscribes the node. Ranks the launcher already bound to different
    cores keep their binding and use all of its cores.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if world.local_size == 1 or world.node_comm is None:
        return len(cpus)
    if any(other != cpus for other in world.node_comm.allgather(cpus)):
        return len(cpus)  # bound by the launcher
    per = max(1, len(cpus) // world.local_size)
    start = (world.local_rank * per) % len(cpus)
    mine = cpus[start:start + per]
    os.sched_setaffinity(0, mine)
    return len(mine)


def current():
    """The World if this process has joined one (init() was called), else None."""
    return _world
