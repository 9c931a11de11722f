"""Running a command as several MPI ranks: `--nproc` spawning and ending every
rank together on an error."""
import importlib.util
import os
import shutil
import subprocess
import sys
import time

from fastformer import _affinity, distributed
from fastformer.commands.common import CLIError

# How long a rank other than 0 waits before reporting its error and aborting
# the job: when rank 0 meets the same error (bad arguments, a mismatch every
# rank detects), rank 0's abort ends the job first and its message is the one shown.
OTHER_RANK_GRACE_S = 2.0


def find_mpiexec():
    """The mpiexec next to this Python (the mpich wheel's), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def without_option(argv, option):
    """argv without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def spawn(nproc, argv):
    """Run `python -m fastformer ARGV` as `nproc` ranks with mpiexec on this
    machine -> mpiexec's exit status."""
    if distributed.launched_by_mpi():
        raise CLIError("--nproc starts mpiexec itself; under mpiexec leave it out")
    mpiexec = find_mpiexec()
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        raise CLIError('--nproc needs mpi4py and mpiexec: pip install "fastformer[mpi]"')
    command = [mpiexec, "-n", str(nproc), sys.executable, "-m", "fastformer", *argv]
    return subprocess.run(command, preexec_fn=_affinity.restore).returncode


def fail(message, code):
    """Print the error `message` and return `code`; in a job of several ranks,
    end them all now (MPI_Abort), so none waits for this one."""
    world = distributed.current()
    if world is None or world.size == 1:
        print(message, file=sys.stderr)
        return code
    if not world.is_main:
        time.sleep(OTHER_RANK_GRACE_S)
        message = f"{message} [rank {world.rank} of {world.size}]"
    print(message, file=sys.stderr)
    world.abort(code)
    return code
