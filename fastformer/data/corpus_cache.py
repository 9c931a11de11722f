"""A tokenized corpus saved as one .npz, so a second run (or --resume) loads
its id arrays instead of re-tokenizing.

The file is named by a hash of everything the arrays depend on (the files'
SHA-256, the tokenizer's fingerprint, the filters) and holds that key too;
it is written atomically and read without pickle. A file that does not
check out in every respect (key, dtypes, shapes, offsets, id range, filters)
is ignored: the caller tokenizes again and overwrites it.
"""
import hashlib
import json
import os
import secrets
import zipfile

import numpy as np

from fastformer._atomic import fsync_dir

FORMAT = "fastformer-corpus-cache-1"
ARRAYS = ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets", "lines")


def cache_key(files, digests, tokenizer, max_len, max_ratio):
    """The JSON text a cache file must hold to be used (paths are left out: a moved file still hits)."""
    return json.dumps({"format": FORMAT, "layout": "tsv" if files.is_tsv else "parallel",
                       "sha256": list(digests), "tokenizer": [tokenizer.kind, tokenizer.fingerprint()],
                       "max_len": max_len, "max_ratio": None if max_ratio is None else float(max_ratio)},
                      sort_keys=True)


def cache_path(cache_dir, key):
    return os.path.join(os.fspath(cache_dir), f"corpus-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz")


def _text(text):
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def save(cache_dir, key, corpus):
    """Write `corpus` (a TokenizedCorpus) atomically: a temporary file, fsync, rename."""
    path = cache_path(cache_dir, key)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as f:  # straight to disk: no second copy of the arrays in memory
            np.savez(f, key=_text(key), report=_text(json.dumps(corpus.report.to_dict())), **corpus.arrays())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
    return path


COUNTS = ("lines", "kept", "empty", "too_long", "bad_ratio")


def load(cache_dir, key, tokenizer, max_len, max_ratio, ids_dtype):
    """-> ((arrays, counts), "hit") from a good cache file, else (None, "miss")
    when there is none or (None, "rebuilt") when there is one that does not check out."""
    path = cache_path(cache_dir, key)
    if not os.path.isfile(path):
        return None, "miss"
    try:
        with np.load(path, allow_pickle=False) as npz:
            if bytes(npz["key"]).decode("utf-8") != key:
                return None, "rebuilt"
            arrays = {name: npz[name] for name in ARRAYS}
            report = json.loads(bytes(npz["report"]).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, UnicodeDecodeError):
        return None, "rebuilt"
    if not _checks_out(arrays, report, tokenizer, max_len, max_ratio, ids_dtype):
        return None, "rebuilt"
    return (arrays, {k: report[k] for k in COUNTS}), "hit"


def _checks_out(a, report, tokenizer, max_len, max_ratio, ids_dtype):
    """Every invariant a freshly tokenized corpus has; nothing in the file is taken on trust."""
    want = {"src_ids": ids_dtype, "tgt_ids": ids_dtype, "src_offsets": np.int64, "tgt_offsets": np.int64,
            "lines": np.int64}
    if any(a[k].dtype != t or a[k].ndim != 1 for k, t in want.items()):
        return False
    n = len(a["lines"])
    if not isinstance(report, dict) or any(not isinstance(report.get(k), int) for k in COUNTS):
        return False
    if report["kept"] != n or report["kept"] + report["empty"] + report["too_long"] + report["bad_ratio"] \
            != report["lines"]:
        return False
    if n and (a["lines"][0] < 1 or a["lines"][-1] > report["lines"] or np.any(np.diff(a["lines"]) <= 0)):
        return False
    for side, size, extra in (("src", tokenizer.src_vocab_size, 0), ("tgt", tokenizer.tgt_vocab_size, 1)):
        ids, offsets = a[f"{side}_ids"], a[f"{side}_offsets"]
        if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(ids):
            return False
        lengths = np.diff(offsets)
        if n and (lengths.min() < 1 or (max_len is not None and lengths.max() + extra > max_len)):
            return False
        if ids.size and (ids.min() < 0 or ids.max() >= size):
            return False
    if max_ratio is not None:
        src_len, tgt_len = np.diff(a["src_offsets"]), np.diff(a["tgt_offsets"])
        if np.any(np.maximum(src_len, tgt_len) > max_ratio * np.minimum(src_len, tgt_len)):
            return False
    return True
