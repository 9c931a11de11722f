"""A fastformer model as a CTranslate2 model, converted exactly.

CTranslate2 (the `deploy` extra: pip install "fastformer[deploy]") decodes
the converted model to the same greedy and beam tokens as fastformer. The
conversion rules, checked against fastformer's own decoding:
- our sinusoid table is given as the encoder's and decoder's
  `position_encodings` (CTranslate2's own table differs), embeddings scaled
  by sqrt(d_model) (`scale_embeddings`), the model's layer-norm epsilon;
- Linear weights are (out, in) on both sides; self-attention takes the
  fused [Wq; Wk; Wv], cross-attention [Wq, (Wk; Wv), Wo];
- pre-norm (norm_first) maps to `pre_norm=True`; with final_norm=False
  `no_final_norm=True`. A post-norm model with final norms (the default
  `final_norm=True, norm_first=False`) is a spec built with pre_norm=True
  (which holds the final LayerNorms) whose layers are then switched to
  post-norm (`encoder.pre_norm = decoder.pre_norm = False`);
- tied embeddings: the generator is the target embedding matrix.
CTranslate2 decodes from the tokenizer's bos token and stops at its eos;
the vocabularies are the tokenizer's token strings, in id order.
"""
import os
import shutil
import tempfile

import numpy as np

INSTALL_HINT = 'CTranslate2 export needs the ctranslate2 package: pip install "fastformer[deploy]"'


def import_ctranslate2():
    """The ctranslate2 module, or ImportError saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ctranslate2


def transformer_spec(state, config, positions):
    """A CTranslate2 TransformerSpec holding `state` (SPEC section 2 names) of a
    model of `config` (constructor arguments); positions: (max_len, d_model)
    float32 sinusoid table. No vocabulary yet (see `write_model`)."""
    import_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec as ts

    d = config["d_model"]
    activation = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}[
        config.get("activation", "relu")]
    norm_first, final_norm = config.get("norm_first", False), config.get("final_norm", True)
    spec = ts.TransformerSpec.from_config(
        (config["num_encoder_layers"], config["num_decoder_layers"]), config["nhead"],
        pre_norm=norm_first or final_norm, no_final_norm=not final_norm, activation=activation)
    if not norm_first:  # post-norm layers; the final LayerNorms (if any) stay
        spec.encoder.pre_norm = spec.decoder.pre_norm = False
    spec.config.layer_norm_epsilon = float(config.get("layer_norm_eps", 1e-5))

    def array(name):
        return np.ascontiguousarray(state[name], dtype=np.float32)

    def norm(dst, name):
        dst.gamma, dst.beta = array(f"{name}.weight"), array(f"{name}.bias")

    def linear(dst, weight, bias):
        dst.weight, dst.bias = np.ascontiguousarray(weight), np.ascontiguousarray(bias)

    def ffn(dst, prefix, norm_name):
        norm(dst.layer_norm, norm_name)
        linear(dst.linear_0, array(f"{prefix}.linear1.weight"), array(f"{prefix}.linear1.bias"))
        linear(dst.linear_1, array(f"{prefix}.linear2.weight"), array(f"{prefix}.linear2.bias"))

    def attention(dst, prefix, norm_name, cross):
        w, b = array(f"{prefix}.in_proj_weight"), array(f"{prefix}.in_proj_bias")
        norm(dst.layer_norm, norm_name)
        if cross:  # queries, then keys and values fused
            linear(dst.linear[0], w[:d], b[:d])
            linear(dst.linear[1], w[d:], b[d:])
        else:
            linear(dst.linear[0], w, b)
        linear(dst.linear[-1], array(f"{prefix}.out_proj.weight"), array(f"{prefix}.out_proj.bias"))

    for side, name in ((spec.encoder, "encoder"), (spec.decoder, "decoder")):
        side.scale_embeddings = True
        side.position_encodings.encodings = np.ascontiguousarray(positions, dtype=np.float32)
        if final_norm:
            norm(side.layer_norm, f"{name}.norm")
    spec.encoder.embeddings[0].weight = array("src_embedding.weight")
    spec.decoder.embeddings.weight = array("tgt_embedding.weight")
    generator = array("tgt_embedding.weight" if config.get("tie_embeddings") else "generator.weight")
    linear(spec.decoder.projection, generator, array("generator.bias"))
    for i, layer in enumerate(spec.encoder.layer):
        p = f"encoder.layers.{i}"
        attention(layer.self_attention, f"{p}.self_attn", f"{p}.norm1", False)
        ffn(layer.ffn, p, f"{p}.norm2")
    for i, layer in enumerate(spec.decoder.layer):
        p = f"decoder.layers.{i}"
        attention(layer.self_attention, f"{p}.self_attn", f"{p}.norm1", False)
        attention(layer.attention, f"{p}.multihead_attn", f"{p}.norm2", True)
        ffn(layer.ffn, p, f"{p}.norm3")
    return spec


def write_model(spec, src_tokens, tgt_tokens, out_dir, bos_token, eos_token, unk_token, quantization=None):
    """Register the vocabularies and special tokens and write the CTranslate2
    model into out_dir (replaced if it exists). Returns out_dir."""
    ctranslate2 = import_ctranslate2()
    spec.register_source_vocabulary(list(src_tokens))
    spec.register_target_vocabulary(list(tgt_tokens))
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = bos_token, eos_token, unk_token
    spec.config.decoder_start_token = bos_token

    class _Converter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    return _Converter().convert(os.fspath(out_dir), quantization=quantization, force=True)


def tokenizer_tokens(tokenizer, side):
    """The tokenizer's token strings of `side` ("src" or "tgt"), indexed by id,
    checked distinct (CTranslate2 maps strings to ids)."""
    method = getattr(tokenizer, f"{side}_tokens", None)
    if method is not None:
        tokens = list(method())
    else:  # a character Vocabulary without the method: its specials, then its symbols
        from fastformer.data.vocab import SPECIALS

        tokens = list(SPECIALS) + list(tokenizer.symbols)
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"the tokenizer's {side} tokens are not distinct strings: CTranslate2 cannot map them")
    return tokens


def export_checkpoint(checkpoint, out_dir, quantization=None, force=False):
    """Write checkpoint folder `checkpoint` as a CTranslate2 model in out_dir,
    with the tokenizer's vocabularies (and, for sentencepiece, its models as
    joint.spm.model, or source.spm.model and target.spm.model). The folder appears whole or not at all (written
    beside it, then renamed). ValueError for a checkpoint without a
    tokenizer, a vocabulary that does not fit the model, or an existing
    non-empty out_dir without force; ImportError without ctranslate2."""
    from fastformer.checkpoint import read_checkpoint
    from fastformer.data.tokenizers import tokenizer_from_manifest
    from fastformer.reference import sinusoidal_positions

    import_ctranslate2()
    ckpt = read_checkpoint(checkpoint)
    tokenizer = tokenizer_from_manifest(ckpt.manifest, ckpt.path)
    if tokenizer is None:
        raise ValueError(f"{ckpt.path}: the checkpoint has no tokenizer, so its vocabulary cannot be exported")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise ValueError(f"--out {out_dir} exists and is not empty (pass --force to replace it)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} exists and is not a folder")
    config = ckpt.model_config
    src_tokens, tgt_tokens = tokenizer_tokens(tokenizer, "src"), tokenizer_tokens(tokenizer, "tgt")
    if (len(src_tokens), len(tgt_tokens)) != (config["src_vocab_size"], config["tgt_vocab_size"]):
        raise ValueError(f"{ckpt.path}: the tokenizer has {len(src_tokens)}/{len(tgt_tokens)} source/target "
                         f"tokens, the model {config['src_vocab_size']}/{config['tgt_vocab_size']}")
    positions = sinusoidal_positions(config["max_len"], config["d_model"], np.float32)
    spec = transformer_spec(ckpt.model_state, config, positions)
    unk_id = getattr(tokenizer, "unk_id", None)
    unk = tgt_tokens[unk_id if unk_id is not None else tokenizer.pad_id]  # the char vocabulary has no unk
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fastformer-export-", dir=parent)
    old = None
    try:
        write_model(spec, src_tokens, tgt_tokens, tmp, tgt_tokens[tokenizer.bos_id], tgt_tokens[tokenizer.eos_id],
                    unk, quantization)
        model_files = getattr(tokenizer, "model_files", None)  # sentencepiece models travel with the export
        for side, data in (model_files() if model_files else {}).items():
            with open(os.path.join(tmp, f"{side}.spm.model"), "wb") as f:  # joint, or source and target
                f.write(data)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".fastformer-old-", dir=parent)
            os.replace(out_dir, os.path.join(old, "model"))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.exists(out_dir):
            os.replace(os.path.join(old, "model"), out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir
