"""Checkpoint averaging: the mean of several checkpoints' model weights (as
Marian and fairseq do with the last or best few checkpoints of a run).

The mean is accumulated in float64 in the order the checkpoints are given
and rounded once to the checkpoints' dtype, so the result does not depend
on anything but the inputs and their order.
"""
import os

import numpy as np

from fastformer.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from fastformer.data.tokenizers import tokenizer_from_manifest


def _model_class(manifest):
    """The class the checkpoint was saved from: the compiled Transformer, or the
    NumPy reference (the only one that holds float64 weights)."""
    import fastformer

    compiled = f"{fastformer.Transformer.__module__}.{fastformer.Transformer.__qualname__}"
    if manifest["model"]["class"] == compiled and manifest["model"]["dtype"] == "float32":
        return fastformer.Transformer
    return fastformer.reference.Transformer


def mean_state(states):
    """{name: array} dicts of equal names and shapes -> their mean, float64
    accumulated in order, in the first one's dtypes."""
    first = states[0]
    out = {}
    for name, value in first.items():
        total = np.zeros(value.shape, dtype=np.float64)
        for state in states:
            total += state[name]
        out[name] = (total / len(states)).astype(value.dtype)
    return out


def average_checkpoints(directories, out):
    """Write the mean of the checkpoints in `directories` (their model
    weights) as a checkpoint in folder `out` (atomically, see
    fastformer.checkpoint), with the first one's config, dtype, tokenizer
    and task, the largest step, and no optimizer state. Returns `out`.

    ValueError when no checkpoint is given, one cannot be read, their model
    config, dtype or tokenizer differ, or `out` is one of them.
    """
    directories = [os.fspath(d) for d in directories]
    if not directories:
        raise ValueError("average needs one or more checkpoint folders")
    out = os.fspath(out)
    for d in directories:
        if os.path.realpath(d) == os.path.realpath(out):
            raise ValueError(f"--out {out} is one of the checkpoints to average: write the average elsewhere")
    ckpts = [read_checkpoint(d) for d in directories]
    first = ckpts[0]
    for ck in ckpts[1:]:
        for what, key in (("model config", lambda c: c.manifest["model"]["config"]),
                          ("dtype", lambda c: c.manifest["model"]["dtype"]),
                          ("tokenizer", lambda c: c.manifest.get("vocab"))):
            if key(ck) != key(first):
                raise ValueError(f"{ck.path}: its {what} differs from {first.path}'s; only checkpoints of one "
                                 "model (same config, dtype and tokenizer) can be averaged")
    model, _ = model_from_checkpoint(first.path, _model_class(first.manifest))
    model.load_state_dict(mean_state([ck.model_state for ck in ckpts]))
    tokenizer = tokenizer_from_manifest(first.manifest, first.path)
    save_checkpoint(out, model, step=max(ck.step for ck in ckpts),
                    trainer_state={"averaged_from": [os.path.abspath(d) for d in directories],
                                   "averaged_steps": [ck.step for ck in ckpts]},
                    vocab=tokenizer, task=first.manifest.get("task"))
    return out
