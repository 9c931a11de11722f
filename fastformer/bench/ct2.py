"""The CTranslate2 side of `fastformer bench generate` (when `ctranslate2` is
installed): the same weights converted exactly into a CTranslate2
TransformerSpec, decoded by a worker process per backend.

CTranslate2 represents pre-norm Transformers with a final LayerNorm, or
post-norm ones without it, so the benchmark model is pre-norm
(norm_first=True) when this side runs. Token ids are their own strings
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
    """Write the CTranslate2 model of `state` (SPEC section 2 names, a pre-norm
    model with final norms, untied, relu) into out_dir."""
    import ctranslate2
    from ctranslate2.specs import common_spec, transformer_spec

    if not kwargs.get("norm_first") or not kwargs.get("final_norm", True) or kwargs.get("tie_embeddings"):
        raise ValueError("the CTranslate2 conversion takes pre-norm models with final norms and untied embeddings")
    d = kwargs["d_model"]
    spec = transformer_spec.TransformerSpec.from_config(
        (kwargs["num_encoder_layers"], kwargs["num_decoder_layers"]), kwargs["nhead"], pre_norm=True,
        activation=common_spec.Activation.RELU)
    spec.config.layer_norm_epsilon = kwargs.get("layer_norm_eps", 1e-5)

    def norm(dst, name):
        dst.gamma, dst.beta = state[f"{name}.weight"], state[f"{name}.bias"]

    def linear(dst, weight, bias):
        dst.weight, dst.bias = np.ascontiguousarray(weight), np.ascontiguousarray(bias)

    def ffn(dst, prefix, norm_name):
        norm(dst.layer_norm, norm_name)
        linear(dst.linear_0, state[f"{prefix}.linear1.weight"], state[f"{prefix}.linear1.bias"])
        linear(dst.linear_1, state[f"{prefix}.linear2.weight"], state[f"{prefix}.linear2.bias"])

    def attention(dst, prefix, norm_name, cross):
        w, b = state[f"{prefix}.in_proj_weight"], state[f"{prefix}.in_proj_bias"]
        norm(dst.layer_norm, norm_name)
        if cross:  # queries, then keys and values fused
            linear(dst.linear[0], w[:d], b[:d])
            linear(dst.linear[1], w[d:], b[d:])
        else:
            linear(dst.linear[0], w, b)
        linear(dst.linear[-1], state[f"{prefix}.out_proj.weight"], state[f"{prefix}.out_proj.bias"])

    for side, enc in ((spec.encoder, True), (spec.decoder, False)):
        side.scale_embeddings = True
        side.position_encodings.encodings = positions
        norm(side.layer_norm, "encoder.norm" if enc else "decoder.norm")
    spec.encoder.embeddings[0].weight = state["src_embedding.weight"]
    spec.decoder.embeddings.weight = state["tgt_embedding.weight"]
    linear(spec.decoder.projection, state["generator.weight"], state["generator.bias"])
    for i, layer in enumerate(spec.encoder.layer):
        p = f"encoder.layers.{i}"
        attention(layer.self_attention, f"{p}.self_attn", f"{p}.norm1", False)
        ffn(layer.ffn, p, f"{p}.norm2")
    for i, layer in enumerate(spec.decoder.layer):
        p = f"decoder.layers.{i}"
        attention(layer.self_attention, f"{p}.self_attn", f"{p}.norm1", False)
        attention(layer.attention, f"{p}.multihead_attn", f"{p}.norm2", True)
        ffn(layer.ffn, p, f"{p}.norm3")
    spec.register_source_vocabulary(vocabulary(kwargs["src_vocab_size"]))
    spec.register_target_vocabulary(vocabulary(kwargs["tgt_vocab_size"]))

    class _Spec(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    return _Spec().convert(out_dir, force=True)


class Worker:
    """One CTranslate2 backend in a child process; decode(src, beam, tokens) -> (B, L) int64."""

    def __init__(self, backend, model_dir, threads):
        env = {k: v for k, v in os.environ.items() if k != "CT2_USE_MKL"}
        env.update(BACKENDS[backend])
        self.proc = subprocess.Popen([sys.executable, "-m", "fastformer.bench.ct2", model_dir, str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
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
