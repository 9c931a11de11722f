"""What the NumPy reference and the compiled Transformer share: the
constructor's checks, the parameter layout of SPEC section 2 and its
initialisation, the flat buffers, state dicts, and the input checks.

Pure Python and NumPy: `fastformer.reference` imports it, so it must not
import the compiled core.
"""
import functools
import math
import numbers
import os
import threading
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

LoadResult = namedtuple("LoadResult", "missing_keys unexpected_keys")

# The constructor arguments that define a model, in signature order: what
# `config()` returns and what a checkpoint's manifest records.
CONFIG_KEYS = ("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "num_encoder_layers",
               "num_decoder_layers", "dim_feedforward", "dropout", "activation", "norm_first",
               "layer_norm_eps", "final_norm", "tie_embeddings", "max_len", "seed")

ACTIVATIONS = ("relu", "gelu")

# What the matrix products of a model multiply in (`compute_dtype`): float32, or
# bfloat16 inputs summed in float32 (mixed precision; weights, gradients and
# optimizer state stay in the model's dtype). Not a CONFIG_KEY: the same weights
# run in either (a checkpoint's manifest records it beside the config, as the
# precision the run trained in, which --resume and translate default to).
COMPUTE_DTYPES = ("float32", "bfloat16")


class Parameter:
    """One named tensor: `data` and `grad` are views into the model's flat buffers."""

    __slots__ = ("data", "grad")

    def __init__(self, data, grad):
        self.data = data
        self.grad = grad

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


# ----- argument checks ---------------------------------------------------------------

def _is_int(value):
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def _is_real(value):
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def check_positive_int(name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_nonnegative_int(name, value, limit=None):
    if not _is_int(value) or value < 0 or (limit is not None and value > limit):
        bound = "" if limit is None else f" at most {limit}"
        raise ValueError(f"{name} must be a non-negative integer{bound}, got {value!r}")


def check_ids(name, ids, vocab_size, max_len):
    """Token ids: a 2-D integer array with entries in [0, vocab_size), at most max_len long."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of token ids, got dtype {ids.dtype}")
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, L) with L >= 1, got {ids.shape}")
    if ids.shape[0] == 0:
        raise ValueError(f"{name}: batch size must be at least 1, got shape {ids.shape}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has length {ids.shape[1]}, more than max_len={max_len}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}), "
                         f"got values in [{ids.min()}, {ids.max()}]")
    return ids


def check_mask(name, mask, shape):
    """A padding mask: None, or a bool array of `shape` (True = padding)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array (True = padding), got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {mask.shape}")
    return mask


SEED_LIMIT = 2 ** 64 - 1  # numpy.random.default_rng's seed range (and Philox's key)
LAYER_LIMIT = 2 ** 16  # layers per stack: a dropout site holds the layer index in 16 bits
BOOL_KEYS = ("norm_first", "final_norm", "tie_embeddings")


def check_compute_dtype(compute_dtype):
    """compute_dtype -> itself, or TypeError/ValueError naming the argument."""
    if not isinstance(compute_dtype, str):
        raise TypeError(f"compute_dtype must be 'float32' or 'bfloat16', got {type(compute_dtype).__name__}")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
    return compute_dtype


def check_config(config):
    """Raise ValueError (or TypeError for a wrong type) for a bad constructor argument, naming it."""
    for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "dim_feedforward", "max_len"):
        check_positive_int(name, config[name])
    for name in ("num_encoder_layers", "num_decoder_layers"):
        check_nonnegative_int(name, config[name])
    check_nonnegative_int("seed", config["seed"], SEED_LIMIT)
    if config["d_model"] % config["nhead"]:
        raise ValueError(f"nhead={config['nhead']} must divide d_model={config['d_model']}")
    if not _is_real(config["dropout"]) or not 0.0 <= config["dropout"] < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {config['dropout']!r}")
    if not isinstance(config["activation"], str) or config["activation"] not in ACTIVATIONS:
        raise ValueError(f"activation must be 'relu' or 'gelu', got {config['activation']!r}")
    eps = config["layer_norm_eps"]
    if not _is_real(eps) or not 0 < eps < float("inf"):
        raise ValueError(f"layer_norm_eps must be a positive finite number, got {eps!r}")
    for name in BOOL_KEYS:
        if not isinstance(config[name], (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {config[name]!r}")
    check_model_size(config)
    for name in ("num_encoder_layers", "num_decoder_layers"):  # after the size check, whose MemoryError comes first
        if config[name] > LAYER_LIMIT:
            raise ValueError(f"{name} must be at most {LAYER_LIMIT} (a dropout site's layer index has 16 bits), "
                             f"got {config[name]}")


# Bytes a parameter costs with its gradient and two optimizer moments (float32),
# and what each parameter tensor costs in Python (its views, name, Parameter).
_BYTES_PER_PARAMETER = 16
_BYTES_PER_TENSOR = 2048


def parameter_count(config):
    """(parameters, tensors) of a model of `config`, counted without listing them."""
    d, f = config["d_model"], config["dim_feedforward"]
    norm = 2 * d
    attn = 3 * d * d + 3 * d + d * d + d
    ffn = f * d + f + d * f + d
    L_enc, L_dec = config["num_encoder_layers"], config["num_decoder_layers"]
    params = L_enc * (attn + ffn + 2 * norm) + L_dec * (2 * attn + ffn + 3 * norm)
    tensors = L_enc * 12 + L_dec * 18
    if config["final_norm"]:
        params, tensors = params + 2 * norm, tensors + 4
    V_src, V_tgt = config["src_vocab_size"], config["tgt_vocab_size"]
    params += V_src * d + V_tgt * d + V_tgt + (0 if config["tie_embeddings"] else V_tgt * d)
    tensors += 3 if config["tie_embeddings"] else 4
    return params, tensors


def _memory_bytes():
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_model_size(config):
    """MemoryError at once when a model of `config` (parameters, gradients,
    optimizer state, positions) cannot fit this machine's memory, before
    anything is listed or allocated."""
    params, tensors = parameter_count(config)
    need = params * _BYTES_PER_PARAMETER + tensors * _BYTES_PER_TENSOR + config["max_len"] * config["d_model"] * 8
    have = _memory_bytes()
    if have is not None and need > have:
        raise MemoryError(f"a model of {params:,} parameters in {tensors:,} tensors needs about "
                          f"{need >> 30:,} GiB for its weights, gradients and optimizer state; "
                          f"this machine has {have >> 30:,} GiB")


# ----- the layout ---------------------------------------------------------------------

def parameter_specs(d_model, dim_feedforward, num_encoder_layers, num_decoder_layers,
                    src_vocab_size, tgt_vocab_size, final_norm=True, tie_embeddings=False):
    """[(name, shape, init)] in SPEC section 2 order; init is 'xavier',
    'zeros', 'ones' or 'normal' (embeddings)."""
    d, f = d_model, dim_feedforward

    def norm(prefix):
        return [(f"{prefix}.weight", (d,), "ones"), (f"{prefix}.bias", (d,), "zeros")]

    def attn(prefix):
        return [(f"{prefix}.in_proj_weight", (3 * d, d), "xavier"),
                (f"{prefix}.in_proj_bias", (3 * d,), "zeros"),
                (f"{prefix}.out_proj.weight", (d, d), "xavier"),
                (f"{prefix}.out_proj.bias", (d,), "zeros")]

    def ffn_and_norms(prefix, norms):
        specs = [(f"{prefix}.linear1.weight", (f, d), "xavier"), (f"{prefix}.linear1.bias", (f,), "zeros"),
                 (f"{prefix}.linear2.weight", (d, f), "xavier"), (f"{prefix}.linear2.bias", (d,), "zeros")]
        for n in norms:
            specs += norm(f"{prefix}.{n}")
        return specs

    specs = []
    for i in range(num_encoder_layers):
        p = f"encoder.layers.{i}"
        specs += attn(f"{p}.self_attn") + ffn_and_norms(p, ("norm1", "norm2"))
    if final_norm:
        specs += norm("encoder.norm")
    for i in range(num_decoder_layers):
        p = f"decoder.layers.{i}"
        specs += attn(f"{p}.self_attn") + attn(f"{p}.multihead_attn") + ffn_and_norms(p, ("norm1", "norm2", "norm3"))
    if final_norm:
        specs += norm("decoder.norm")
    specs += [("src_embedding.weight", (src_vocab_size, d), "normal"),
              ("tgt_embedding.weight", (tgt_vocab_size, d), "normal")]
    if not tie_embeddings:
        specs.append(("generator.weight", (tgt_vocab_size, d), "xavier"))
    specs.append(("generator.bias", (tgt_vocab_size,), "zeros"))
    return specs


def initial_value(rng, shape, init, d_model):
    """A float64 array of `shape` drawn from `rng` as torch.nn.Transformer
    initialises it: xavier-uniform (fan_out = shape[0], fan_in = shape[1]),
    normal(0, d_model**-0.5) for embeddings, ones or zeros."""
    if init == "xavier":
        bound = np.sqrt(6.0 / (shape[0] + shape[1]))
        return rng.uniform(-bound, bound, size=shape)
    if init == "normal":
        return rng.normal(0.0, d_model ** -0.5, size=shape)
    return np.ones(shape) if init == "ones" else np.zeros(shape)


def synchronized(method):
    """Run `method` holding the model's lock: a model shared between threads
    runs one forward, backward or generate at a time (each uses the model's
    one workspace and saved activations)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


class TransformerBase:
    """Constructor, parameters and state of an encoder-decoder Transformer.

    Parameters and gradients are views into two flat buffers (`_flat`,
    `_flat_grad`) in SPEC section 2 order, so zero_grad is one fill and an
    optimizer one flat loop. Initialisation: drawn in SPEC order from
    numpy.random.default_rng(seed), see `initial_value`. Subclasses add
    forward, backward and generate.
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5,
                 final_norm=True, tie_embeddings=False, max_len=1024, seed=0, dtype=np.float32,
                 compute_dtype="float32"):
        config = dict(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
                      nhead=nhead, num_encoder_layers=num_encoder_layers,
                      num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
                      dropout=dropout, activation=activation, norm_first=norm_first,
                      layer_norm_eps=layer_norm_eps, final_norm=final_norm,
                      tie_embeddings=tie_embeddings, max_len=max_len, seed=seed)
        check_config(config)
        self.compute_dtype = check_compute_dtype(compute_dtype)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.src_vocab_size, self.tgt_vocab_size = int(src_vocab_size), int(tgt_vocab_size)
        self.d_model, self.nhead, self.dim_feedforward = int(d_model), int(nhead), int(dim_feedforward)
        self.num_encoder_layers, self.num_decoder_layers = int(num_encoder_layers), int(num_decoder_layers)
        self.dropout, self.activation, self.norm_first = float(dropout), activation, bool(norm_first)
        self.layer_norm_eps, self.final_norm = float(layer_norm_eps), bool(final_norm)
        self.tie_embeddings, self.max_len, self.seed = bool(tie_embeddings), int(max_len), int(seed)
        self.dtype = dtype
        self._lock = threading.RLock()
        self.training = True
        self.rng_step = 0  # training-mode forwards so far: the `step` of the dropout masks

        specs = parameter_specs(self.d_model, self.dim_feedforward, self.num_encoder_layers,
                                self.num_decoder_layers, self.src_vocab_size, self.tgt_vocab_size,
                                self.final_norm, self.tie_embeddings)
        total = sum(int(np.prod(shape)) for _, shape, _ in specs)
        self._flat = np.empty(total, dtype=dtype)
        self._flat_grad = np.zeros(total, dtype=dtype)
        self._params = {}
        offset = 0
        for name, shape, _ in specs:
            n = int(np.prod(shape))
            self._params[name] = Parameter(self._flat[offset:offset + n].reshape(shape),
                                           self._flat_grad[offset:offset + n].reshape(shape))
            offset += n
        rng = np.random.default_rng(self.seed)
        for name, shape, init in specs:
            self._params[name].data[...] = initial_value(rng, shape, init, self.d_model)

    # ----- configuration and parameters ---------------------------------------------

    def config(self):
        """The constructor arguments (CONFIG_KEYS) as a JSON-able dict."""
        return {key: getattr(self, key) for key in CONFIG_KEYS}

    def flat_parameters(self):
        """(data, grad): the two flat 1-D buffers every parameter is a view of."""
        return self._flat, self._flat_grad

    def named_parameters(self):
        """Yield (name, Parameter) in SPEC section 2 order."""
        yield from self._params.items()

    def parameters(self):
        """Yield every Parameter in SPEC section 2 order."""
        yield from self._params.values()

    def zero_grad(self):
        """Set every gradient to 0 (one fill of the flat gradient buffer)."""
        self._flat_grad.fill(0)

    def state_dict(self):
        """{name: copy of the parameter}, SPEC names and order."""
        return {name: p.data.copy() for name, p in self._params.items()}

    @synchronized
    def load_state_dict(self, state_dict, strict=True):
        """Copy `state_dict` (name -> array) into the parameters.

        Everything is checked before anything is copied: a missing or unexpected
        name (when strict), a non-numeric or ragged value (TypeError), a shape
        mismatch or a value that is not finite in the model's dtype (ValueError).
        Returns (missing_keys, unexpected_keys).
        """
        values, result = self._checked_state_dict(state_dict, strict)
        self._assign_state(values)
        return result

    def _checked_state_dict(self, state_dict, strict=True):
        """The checks of `load_state_dict` -> ({name: array in the model's dtype}, LoadResult);
        changes nothing."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, "
                            f"got {type(state_dict).__name__}")
        missing = [n for n in self._params if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self._params]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        values = {}
        for name in self._params:
            if name in state_dict:
                values[name] = self._checked_value(name, state_dict[name])
        return values, LoadResult(missing, unexpected)

    def _checked_value(self, name, value):
        """One state_dict entry as an array of the parameter's shape and the model's dtype."""
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:  # e.g. a ragged nested list
            raise TypeError(f"state_dict[{name!r}] must be a numeric array: {exc}") from None
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"state_dict[{name!r}] must be a numeric array, got dtype {value.dtype}")
        if value.shape != self._params[name].shape:
            raise ValueError(f"state_dict[{name!r}] must have shape {self._params[name].shape}, "
                             f"got {value.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            cast = value.astype(self.dtype)  # finiteness is checked in the model's precision
        if not np.all(np.isfinite(cast)):
            raise ValueError(f"state_dict[{name!r}] holds non-finite values in {self.dtype} "
                             f"(NaN, inf, or beyond its range)")
        return cast

    def _assign_state(self, values):
        for name, value in values.items():
            self._params[name].data[...] = value

    def train(self, mode=True):
        """Training mode (dropout on); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (no dropout); returns self."""
        return self.train(False)

    @property
    def _generator_weight(self):
        return "tgt_embedding.weight" if self.tie_embeddings else "generator.weight"

    # ----- input checks ---------------------------------------------------------------

    def _check_inputs(self, src, tgt_in, src_key_padding_mask, tgt_key_padding_mask):
        """-> (src, tgt_in, src_mask, tgt_mask) checked (see `forward`)."""
        src = check_ids("src", src, self.src_vocab_size, self.max_len)
        tgt_in = check_ids("tgt_in", tgt_in, self.tgt_vocab_size, self.max_len)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"src and tgt_in must have one batch size, got {src.shape[0]} "
                             f"and {tgt_in.shape[0]}")
        src_mask = check_mask("src_key_padding_mask", src_key_padding_mask, src.shape)
        tgt_mask = check_mask("tgt_key_padding_mask", tgt_key_padding_mask, tgt_in.shape)
        return src, tgt_in, src_mask, tgt_mask

    def _check_targets(self, targets, shape, ignore_index, label_smoothing, normalizer):
        """forward_backward's loss arguments -> targets as int64 (B, T), checked."""
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral) \
                or not -2 ** 63 <= ignore_index < 2 ** 63:
            raise ValueError(f"ignore_index must be a 64-bit integer, got {ignore_index!r}")
        if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"targets must be an integer numpy.ndarray, got "
                            f"{getattr(targets, 'dtype', type(targets).__name__)}")
        if targets.shape != shape:
            raise ValueError(f"targets must have tgt_in's shape {shape}, got {targets.shape}")
        targets = np.require(targets, np.int64, ("C", "A"))
        valid = targets[targets != ignore_index]
        if valid.size and (valid.min() < 0 or valid.max() >= self.tgt_vocab_size):
            raise ValueError(f"targets must be in [0, {self.tgt_vocab_size}) or ignore_index={ignore_index}")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        if normalizer is not None and (isinstance(normalizer, bool) or not isinstance(normalizer, numbers.Real)
                                       or not 0 < normalizer < math.inf):
            raise ValueError(f"normalizer must be a positive finite number, got {normalizer!r}")
        return targets

    def _logits_out(self, out, shape):
        """Where forward writes the logits: `out` (checked) or a new array."""
        dtype = np.dtype(self.dtype)
        if out is None:
            return np.empty(shape, dtype=dtype)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"out must have the model's dtype {dtype}, got {out.dtype}")
        if out.shape != shape:
            raise ValueError(f"out must have the logits' shape {shape}, got {out.shape}")
        if not (out.flags.c_contiguous and out.flags.writeable and out.flags.aligned):
            raise ValueError("out must be C-contiguous, aligned and writeable")
        if np.may_share_memory(out, self._flat) or np.may_share_memory(out, self._flat_grad):
            raise ValueError("out must not overlap the model's parameters or gradients")
        return out

    @staticmethod
    def _check_dlogits(dlogits, shape):
        """dlogits: a float array of the last forward's logits `shape`."""
        dlogits = np.asarray(dlogits)
        if not np.issubdtype(dlogits.dtype, np.floating):
            raise TypeError(f"dlogits must be a float array, got dtype {dlogits.dtype}")
        if dlogits.shape != shape:
            raise ValueError(f"dlogits must have the logits' shape {shape}, got {dlogits.shape}")
        return dlogits
