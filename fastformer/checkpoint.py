"""Checkpoint folders: weights and optimizer state in safetensors, the rest
in a JSON manifest; written atomically, read back with validation, no pickle.

Layout of a checkpoint folder:

    manifest.json                       format, version, model config, step,
                                        RNG counters, optimizer hyperparameters,
                                        schedule, trainer state, vocabulary, task,
                                        and the name, size and SHA-256 of each file
    model-<step>-<hash>.safetensors     the model's state_dict (SPEC names; PyTorch loads it)
    optimizer-<step>-<hash>.safetensors the optimizer's flat state buffers
    tokenizer-<side>-<step>-<hash>.model a sentencepiece model (side: joint, source or target),
                                        when the tokenizer is a SentencePieceTokenizer
    ema-<step>-<hash>.safetensors       (optional) the moving average of the weights, by
                                        parameter name (see fastformer.ema)

The manifest is the commit point. Data files are new files (their names
carry their content hash), renamed into place before the manifest is
atomically replaced, so a crash at any moment leaves a manifest whose files
are all present and intact: the previous checkpoint or the new one. Files
the new manifest no longer names are removed after it is in place.
"""
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np
import safetensors.numpy

from fastformer._atomic import atomic_write_bytes, fsync_dir, write_temp
from fastformer._kernels import model_dtype
from fastformer._version import __version__
from fastformer.layout import CONFIG_KEYS, parameter_specs
from fastformer.manifest import check_manifest

FORMAT = "fastformer-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_DATA_FILE = re.compile(r"^(model|optimizer|ema)-\d+-[0-9a-f]{16}\.safetensors$")
_TOKENIZER_FILE = re.compile(r"^tokenizer-(joint|source|target)-\d+-[0-9a-f]{16}\.model$")
_TEMP_PREFIX = ".fastformer-"

# The constructor arguments that define a model's shape and behaviour.
MODEL_CONFIG_KEYS = CONFIG_KEYS


def model_config(model):
    """The model's constructor arguments as a JSON-able dict (`model.config()`
    when the model has one, else its attributes of the same names)."""
    if callable(getattr(model, "config", None)):
        return dict(model.config())
    config = {}
    for key in MODEL_CONFIG_KEYS:
        value = getattr(model, key)
        config[key] = value.item() if isinstance(value, np.generic) else value
    return config


@dataclass
class Checkpoint:
    """A validated checkpoint read from disk.

    manifest: the parsed manifest.json; model_state: {name: array};
    optimizer_state: an optimizer state_dict (or None when none was saved);
    ema_state: {name: array} of the weights' moving average (or None).
    """

    path: str
    manifest: dict
    model_state: dict
    optimizer_state: dict = field(default=None)
    ema_state: dict = field(default=None)

    @property
    def step(self):
        return self.manifest["step"]

    @property
    def model_config(self):
        return self.manifest["model"]["config"]


# ----- saving ---------------------------------------------------------------------


def _checksum(manifest):
    """SHA-256 of the manifest's canonical JSON, without its own checksum."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _place_data_file(directory, kind, step, data):
    """Write `data` as a content-named file of the folder; returns its manifest entry."""
    digest = hashlib.sha256(data).hexdigest()
    extension = "model" if kind.startswith("tokenizer-") else "safetensors"
    name = f"{kind}-{step:08d}-{digest[:16]}.{extension}"
    final = os.path.join(directory, name)
    # Same name means same content: a file the current manifest may name is never rewritten.
    if not (os.path.isfile(final) and os.path.getsize(final) == len(data)):
        tmp = write_temp(directory, data, prefix=_TEMP_PREFIX)
        try:
            os.replace(tmp, final)
        except BaseException:
            _remove_quietly(tmp)
            raise
    return {"name": name, "size": len(data), "sha256": digest}


def save_checkpoint(directory, model, optimizer=None, *, step=0, schedule=None, trainer_state=None,
                    vocab=None, task=None, ema_state=None):
    """Save a checkpoint into `directory` (created if needed), atomically.

    model: any fastformer model; optimizer: a fastformer.optim optimizer or
    None; step: training steps done; schedule: a schedule or None;
    trainer_state: a JSON-able dict; vocab: a tokenizer (Vocabulary,
    SentencePieceTokenizer) or None, its model files saved beside the
    weights; task: a JSON-able description of the data; ema_state: {name:
    array} of the weights' moving average, or None. Returns the folder path.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    step = int(step)
    weights = {name: np.ascontiguousarray(v) for name, v in model.state_dict().items()}
    files = {"model": safetensors.numpy.save(weights, metadata={"format": "pt"})}
    optimizer_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        optimizer_meta = {k: v for k, v in state.items() if k != "state"}
        files["optimizer"] = safetensors.numpy.save(state["state"])
    if vocab is not None and callable(getattr(vocab, "model_files", None)):  # sentencepiece models
        files.update({f"tokenizer-{side}": data for side, data in vocab.model_files().items()})
    if ema_state is not None:
        files["ema"] = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in ema_state.items()})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastformer_version": __version__,
        "step": step,
        "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                  "config": model_config(model), "dtype": model_dtype(model).name,
                  "compute_dtype": getattr(model, "compute_dtype", "float32"),
                  "rng_step": int(model.rng_step)},
        "optimizer": optimizer_meta,
        "schedule": schedule.config() if schedule is not None else None,
        "trainer": trainer_state,
        "vocab": vocab.to_dict() if vocab is not None else None,
        "task": task,
    }
    placed = []
    try:
        manifest["files"] = {}
        for kind, data in files.items():
            entry = _place_data_file(directory, kind, step, data)
            placed.append(entry["name"])
            manifest["files"][kind] = entry
        fsync_dir(directory)
        manifest["checksum"] = _checksum(manifest)
        atomic_write_bytes(os.path.join(directory, MANIFEST),
                           json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"),
                           temp_prefix=_TEMP_PREFIX)
    except BaseException:
        _remove_unreferenced(directory, keep=_referenced_files(directory))
        raise
    _remove_unreferenced(directory, keep=set(placed))
    return directory


def _referenced_files(directory):
    """Data files named by the folder's current manifest (empty if unreadable)."""
    try:
        with open(os.path.join(directory, MANIFEST), "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        return {entry["name"] for entry in manifest["files"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _remove_unreferenced(directory, keep):
    """Remove our data files not in `keep` and our leftover temporary files."""
    for name in os.listdir(directory):
        ours = _DATA_FILE.match(name) or _TOKENIZER_FILE.match(name) \
            or (name.startswith(_TEMP_PREFIX) and name.endswith(".tmp"))
        if ours and name not in keep:
            _remove_quietly(os.path.join(directory, name))


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


# ----- loading --------------------------------------------------------------------


def has_checkpoint(directory):
    """Whether `directory` holds a checkpoint manifest."""
    return os.path.isfile(os.path.join(os.fspath(directory), MANIFEST))


def _read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise ValueError(f"{directory}: no such checkpoint folder")
    if not os.path.isfile(path):
        raise ValueError(f"{directory}: not a checkpoint folder (no {MANIFEST})")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: the manifest is not valid JSON (truncated or altered?): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastformer checkpoint manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{path}: checkpoint format version {version!r} is not supported "
                         f"(this fastformer {__version__} reads version {FORMAT_VERSION})")
    if manifest.get("checksum") != _checksum(manifest):
        raise ValueError(f"{path}: the manifest's checksum does not match its content (altered?)")
    check_manifest(path, manifest)
    return manifest


def read_data_file(directory, entry, what):
    """The bytes of one file named by the manifest (`entry`: name, size,
    sha256), checked; ValueError naming the file when missing or altered."""
    name = entry["name"]
    if not (_DATA_FILE.match(name) or _TOKENIZER_FILE.match(name)):  # never follow a path out of the folder
        raise ValueError(f"{directory}: the manifest names a bad {what} file {name!r}")
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: the {what} file named by the manifest is missing") from None
    if len(data) != entry["size"]:
        raise ValueError(f"{path}: the {what} file has {len(data)} bytes, the manifest says "
                         f"{entry['size']} (truncated or altered)")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{path}: the {what} file's SHA-256 does not match the manifest (altered)")
    return data


def _read_tensors(directory, entry, what):
    """Read one safetensors file named by the manifest, checking its size and hash."""
    if not _DATA_FILE.match(entry["name"]):
        raise ValueError(f"{directory}: the manifest names a bad {what} file {entry['name']!r}")
    path = os.path.join(directory, entry["name"])
    data = read_data_file(directory, entry, what)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise ValueError(f"{path}: not a readable safetensors file: {exc}") from None
    for key, value in tensors.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"{path}: tensor {key!r} has dtype {value.dtype}, expected a float")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{path}: tensor {key!r} holds non-finite values (NaN or inf)")
    return tensors


def read_checkpoint(directory):
    """Read and validate a checkpoint folder -> Checkpoint.

    ValueError, naming the file, for: a missing folder or manifest, a
    manifest that is not valid JSON, of another format or a newer version,
    whose checksum fails, or that lacks a field or holds one of the wrong
    type (naming the field, see fastformer.manifest); a missing, truncated or altered data file; a file
    that is not safetensors; NaN or inf in a tensor.
    """
    directory = os.fspath(directory)
    manifest = _read_manifest(directory)  # its schema is checked: every entry read below is there
    files = manifest["files"]
    model_state = _read_tensors(directory, files["model"], "weights")
    optimizer_state = None
    if manifest.get("optimizer") is not None:  # optional: a model-only checkpoint may lack it
        optimizer_state = dict(manifest["optimizer"],
                               state=_read_tensors(directory, files["optimizer"], "optimizer"))
    for kind in sorted(files):
        if kind.startswith("tokenizer-"):  # sentencepiece models: checked here, loaded by tokenizer_from_manifest
            read_data_file(directory, files[kind], "tokenizer")
    ema_state = _read_tensors(directory, files["ema"], "EMA weights") if "ema" in files else None
    return Checkpoint(directory, manifest, model_state, optimizer_state, ema_state)


def check_model_state(expected, state, where):
    """ValueError unless `state` has exactly the parameter names and shapes
    of `expected` ({name: shape}, as a model's named_parameters)."""
    missing = [n for n in expected if n not in state]
    extra = [n for n in state if n not in expected]
    if missing or extra:
        raise ValueError(f"{where}: the weights do not match the model: missing {_some(missing)}, "
                         f"unexpected {_some(extra)}")
    for name, shape in expected.items():
        if state[name].shape != tuple(shape):
            raise ValueError(f"{where}: weight {name!r} has shape {state[name].shape}, "
                             f"the model expects {tuple(shape)}")


def _some(names, limit=10):
    """The list as repr'd, its first `limit` names only when longer."""
    return repr(names) if len(names) <= limit else f"{names[:limit]!r} and {len(names) - limit:,} more"


def _shapes(model):
    return {name: p.shape for name, p in model.named_parameters()}


def _config_shapes(config):
    """{name: shape} of the parameters of a model of `config` (a checked
    saved config), listed without building the model."""
    specs = parameter_specs(config["d_model"], config["dim_feedforward"], config["num_encoder_layers"],
                            config["num_decoder_layers"], config["src_vocab_size"], config["tgt_vocab_size"],
                            config["final_norm"], config["tie_embeddings"])
    return {name: shape for name, shape, _ in specs}


# Config entries that change training (dropout masks) but not the weights' meaning.
TRAINING_ONLY_KEYS = ("dropout", "seed")


def load_checkpoint(source, model, optimizer=None, strict_config=True):
    """Load a checkpoint into `model` (and `optimizer`, if given), restoring
    the model's dropout counter `rng_step`. source: a folder, or a Checkpoint
    from read_checkpoint. Returns the Checkpoint.

    ValueError (besides read_checkpoint's) when the saved model config or
    dtype differs from the model's (with strict_config=False, differences in
    dropout and seed are allowed: they do not change what the weights mean,
    but a resumed run is then not the same run), the weights do not fit the model, or an
    optimizer is given but the checkpoint has no (or another kind of)
    optimizer state. Nothing is changed when an error is raised.
    """
    ckpt = source if isinstance(source, Checkpoint) else read_checkpoint(source)
    saved = ckpt.manifest["model"]
    ours = model_config(model)
    diff = sorted(k for k in set(saved["config"]) | set(ours) if saved["config"].get(k) != ours.get(k)
                  and (strict_config or k not in TRAINING_ONLY_KEYS))
    if diff:
        details = ", ".join(f"{k}: saved {saved['config'].get(k)!r}, model {ours.get(k)!r}" for k in diff)
        raise ValueError(f"{ckpt.path}: the checkpoint's model config differs from the model's ({details})")
    if saved["dtype"] != model_dtype(model).name:
        raise ValueError(f"{ckpt.path}: the checkpoint holds a {saved['dtype']} model, "
                         f"the model is {model_dtype(model).name}")
    check_model_state(_shapes(model), ckpt.model_state, ckpt.path)
    # Check everything, then assign: a load that fails changes nothing.
    try:
        weights, _ = model._checked_state_dict(ckpt.model_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{ckpt.path}: {exc}") from None
    optimizer_state = None
    if optimizer is not None:
        if ckpt.optimizer_state is None:
            raise ValueError(f"{ckpt.path}: the checkpoint has no optimizer state to resume from")
        try:
            optimizer_state = optimizer._checked_state_dict(ckpt.optimizer_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{ckpt.path}: {exc}") from None
        optimizer._assign_state(optimizer_state)
    model._assign_state(weights)
    model.rng_step = saved["rng_step"]
    return ckpt


def model_from_checkpoint(directory, model_class, compute_dtype=None):
    """Build a `model_class` from a checkpoint's saved config and load its
    weights; returns (model, Checkpoint). compute_dtype: "float32" or
    "bfloat16", or None for the one the checkpoint was trained in."""
    ckpt = read_checkpoint(directory)
    kwargs = dict(ckpt.model_config)
    kwargs["compute_dtype"] = compute_dtype or ckpt.manifest["model"].get("compute_dtype", "float32")
    if ckpt.manifest["model"]["dtype"] != "float32":  # only the reference model takes a dtype
        kwargs["dtype"] = np.dtype(ckpt.manifest["model"]["dtype"])
    # The weights against the saved config before a model is built (for a
    # config altered to thousands of layers, building takes seconds).
    check_model_state(_config_shapes(ckpt.model_config), ckpt.model_state, ckpt.path)
    try:
        model = model_class(**kwargs)
    except (TypeError, ValueError, MemoryError) as exc:
        raise ValueError(f"{ckpt.path}: cannot build {model_class.__name__} from the saved config: {exc}") from None
    model.load_state_dict(ckpt.model_state)
    model.rng_step = ckpt.manifest["model"]["rng_step"]
    return model, ckpt
