"""The CTranslate2 side of `fastformer bench generate` (when `ctranslate2` is
installed): the same weights converted exactly into a CTranslate2
TransformerSpec, decoded by a worker process per backend.

The conversion is `fastformer export`'s (`fastformer.export.ctranslate2`);
the benchmark model is pre-norm (norm_first=True) when this side runs. Token ids are their own strings
("0", "1", ...), with bos, eos and pad named as CTranslate2 expects.

A backend is chosen when the library loads (CT2_USE_MKL=0 selects oneDNN,
unset the default MKL one), so each runs in its own process: `Worker`
starts `python -m fastformer.bench.ct2 MODEL_DIR THREADS` and sends it one
JSON request per line (source ids, beam size, tokens), timing the round trip
of each decoding in the parent like every other side.
"""
import json
import os
import subprocess
import sys

import numpy as np

from fastformer import _affinity
from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID

BACKENDS = {"ct2-onednn": {"CT2_USE_MKL": "0"}, "ct2-mkl": {}}


def available():
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def vocabulary(n):
    names = [str(i) for i in range(n)]
    names[PAD_ID], names[BOS_ID], names[EOS_ID] = "<unk>", "<s>", "</s>"
    return names


def convert(state, kwargs, positions, out_dir):
    """Write the CTranslate2 model of `state` (SPEC section 2 names, a model of
    constructor arguments `kwargs`) into out_dir, by the one converter of
    `fastformer export` (`fastformer.export.ctranslate2`)."""
    from fastformer.export.ctranslate2 import transformer_spec, write_model

    spec = transformer_spec(state, kwargs, positions)
    return write_model(spec, vocabulary(kwargs["src_vocab_size"]), vocabulary(kwargs["tgt_vocab_size"]), out_dir,
                       bos_token="<s>", eos_token="</s>", unk_token="<unk>")


class Worker:
    """One CTranslate2 backend in a child process; decode(src, beam, tokens) -> (B, L) int64."""

    def __init__(self, backend, model_dir, threads):
        env = {k: v for k, v in os.environ.items() if k != "CT2_USE_MKL"}
        env.update(BACKENDS[backend])
        self.proc = subprocess.Popen([sys.executable, "-m", "fastformer.bench.ct2", model_dir, str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                     preexec_fn=_affinity.restore)
        self.version = self._ask({"hello": True})["version"]

    def _ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the CTranslate2 worker exited")
        return json.loads(line)

    def decode(self, src, beam, tokens):
        return np.array(self._ask({"src": np.asarray(src).tolist(), "beam": beam, "tokens": tokens})["out"],
                        dtype=np.int64)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _serve(model_dir, threads):
    import ctranslate2

    translator = ctranslate2.Translator(model_dir, device="cpu", inter_threads=1, intra_threads=threads)
    for line in sys.stdin:
        req = json.loads(line)
        if "hello" in req:
            reply = {"version": ctranslate2.__version__}
        else:
            names = vocabulary(max(max(row) for row in req["src"]) + 1)
            source = [[names[t] for t in row] for row in req["src"]]
            res = translator.translate_batch(source, beam_size=req["beam"], max_decoding_length=req["tokens"],
                                             length_penalty=1.0)
            out = [[_token_id(t) for t in r.hypotheses[0]] for r in res]
            L = max(1, max(len(o) for o in out))
            reply = {"out": [o + [EOS_ID] * (L - len(o)) for o in out]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def _token_id(name):
    return int(name) if name.isdigit() else {"<unk>": PAD_ID, "<s>": BOS_ID, "</s>": EOS_ID}[name]


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
