"""NumPy's OpenBLAS at its best: a benchmark never runs under a cap on it.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines, make OpenBLAS
use another CPU's kernel or blocking (seen: Haswell's AVX2 kernel on an
AVX-512 Xeon and on a Zen 5 EPYC). OpenBLAS reads them once, when numpy
loads it, so the benchmark runs again in a child process with both unset;
only numpy's OpenBLAS reads them (fastformer's kernels and PyTorch's MKL and
oneDNN do not), so this frees the NumPy side and changes nothing else. The
header says which were unset. FASTFORMER_BENCH_KEEP_BLAS_ENV=1 keeps them
(and the header then says numpy ran capped)."""
import json
import os
import subprocess
import sys

CAPPING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_BY_PARENT = "FASTFORMER_BENCH_UNSET_BLAS_ENV"  # JSON {variable: value} the parent removed
KEEP = "FASTFORMER_BENCH_KEEP_BLAS_ENV"


def capping_variables():
    """{variable: value} of the caps set in this process's environment."""
    return {k: os.environ[k] for k in CAPPING_VARIABLES if os.environ.get(k)}


def unset_for_this_run():
    """{variable: value} the parent process unset for this benchmark run ({} if none)."""
    try:
        return json.loads(os.environ.get(_UNSET_BY_PARENT) or "{}")
    except ValueError:
        return {}


def needs_rerun():
    return bool(capping_variables()) and os.environ.get(KEEP) != "1"


def rerun(argv):
    """Run `python -m fastformer.bench argv` with the caps unset; its stdout
    is relayed through ours (its stderr, the progress lines, goes straight
    to ours). Returns its exit status."""
    from fastformer import _affinity
    from fastformer.bench.harness import importing_this_fastformer  # harness imports this module

    env = {k: v for k, v in os.environ.items() if k not in CAPPING_VARIABLES}
    env[_UNSET_BY_PARENT] = json.dumps(capping_variables())
    env = importing_this_fastformer(env)
    sys.stdout.flush()
    with subprocess.Popen([sys.executable, "-m", "fastformer.bench", *argv], env=env, stdout=subprocess.PIPE,
                          text=True, bufsize=1, preexec_fn=_affinity.restore) as child:
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
    return child.returncode
