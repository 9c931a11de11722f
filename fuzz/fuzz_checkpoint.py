"""Fuzz checkpoint folders: a valid checkpoint with one thing changed — a
manifest field set to an arbitrary JSON value (with a checksum that matches,
as a crafted file would have), bytes of a data file flipped or cut, a file
removed, or the manifest replaced by arbitrary bytes. Reading and loading
may only raise ValueError, and a failed load must change nothing."""
import json
import os
import shutil
import tempfile

import numpy as np

from _harness import run, scalar

JSON_VALUES = [None, True, 0, -1, 1, 2 ** 63, 2 ** 53, 1.5, "", "x", [], {}, [1, 2], {"a": 1}]


def setup():
    import fastformer as ff
    from fastformer.checkpoint import save_checkpoint
    from fastformer.data import Vocabulary

    model = ff.Transformer(7, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=8, max_len=6)
    opt = ff.optim.AdamW(model)
    opt.step()
    base = tempfile.mkdtemp(prefix="ff-fuzz-ckpt-")
    good = os.path.join(base, "good")
    save_checkpoint(good, model, opt, step=3, vocab=Vocabulary("abcd"), trainer_state={"step": 3})
    files = {name: open(os.path.join(good, name), "rb").read() for name in os.listdir(good)}
    return ff, files, os.path.join(base, "work")


def _paths(value, prefix=()):
    """Every path into a parsed JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


def _mutate_manifest(fdp, raw):
    from fastformer.checkpoint import _checksum

    manifest = json.loads(raw)
    paths = [p for p in _paths(manifest) if p and p[-1] != "checksum"]
    path = fdp.PickValueInList(paths)
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and fdp.ConsumeProbability() < 0.3:
        del parent[path[-1]]
    else:
        choice = fdp.PickValueInList(JSON_VALUES + [scalar(fdp), fdp.ConsumeUnicode(8), fdp.ConsumeInt(8)])
        parent[path[-1]] = choice if not isinstance(choice, float) or np.isfinite(choice) or fdp.ConsumeBool() else 0
    if fdp.ConsumeProbability() < 0.9:
        manifest["checksum"] = _checksum(manifest)
    return json.dumps(manifest).encode()


def test_one_input(data, state):
    import atheris

    ff, files, work = state
    from fastformer.checkpoint import MANIFEST, load_checkpoint, model_from_checkpoint, read_checkpoint

    fdp = atheris.FuzzedDataProvider(data)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    contents = dict(files)
    how = fdp.ConsumeIntInRange(0, 4)
    name = fdp.PickValueInList(sorted(contents))
    if how <= 1:
        contents[MANIFEST] = _mutate_manifest(fdp, contents[MANIFEST])
    elif how == 2:
        blob = bytearray(contents[name])
        for _ in range(fdp.ConsumeIntInRange(1, 4)):
            blob[fdp.ConsumeIntInRange(0, len(blob) - 1)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        contents[name] = bytes(blob)
    elif how == 3:
        contents[name] = contents[name][:fdp.ConsumeIntInRange(0, len(contents[name]))]
    elif fdp.ConsumeBool():
        del contents[name]
    else:
        contents[MANIFEST] = fdp.ConsumeBytes(fdp.remaining_bytes())
    for file_name, blob in contents.items():
        with open(os.path.join(work, file_name), "wb") as f:
            f.write(blob)
    step = fdp.ConsumeIntInRange(0, 2)
    if step == 0:
        read_checkpoint(work)
    elif step == 1:
        model_from_checkpoint(work, fdp.PickValueInList([ff.Transformer, ff.reference.Transformer]))
    else:
        model = ff.Transformer(7, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                               dim_feedforward=8, max_len=6, seed=1)
        opt = ff.optim.AdamW(model, lr=0.5)
        before, opt_before = model.state_dict(), opt.state_dict()
        try:
            load_checkpoint(work, model, opt)
        except ValueError:
            after, opt_after = model.state_dict(), opt.state_dict()
            if any(not np.array_equal(after[k], before[k]) for k in before) or opt_after["steps"] != 0 \
                    or opt_after["hyperparameters"] != opt_before["hyperparameters"]:
                raise AssertionError("a failed load_checkpoint changed the model or the optimizer")
            raise


if __name__ == "__main__":
    run(test_one_input, setup, expected=(ValueError,))
