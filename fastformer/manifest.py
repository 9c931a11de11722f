"""The schema of a checkpoint's manifest.json: every field the loaders read,
checked for presence and type before anything is built or loaded, so a bad
manifest gives one ValueError naming the file and the field, never a
KeyError or an OverflowError from deep inside a loader.
"""
import numbers
import re

from fastformer.layout import CONFIG_KEYS, check_config

# Counters (steps, dropout counters) stay exact in a float64 and a JSON reader.
MAX_COUNT = 2 ** 53
DTYPES = ("float32", "float64")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
SENTENCEPIECE_FORMAT = "fastformer-sentencepiece"  # fastformer.data.subword.FORMAT


class _Fields:
    """Reads fields of one manifest, naming `path` and the field in every error."""

    def __init__(self, path):
        self.path = path

    def fail(self, field, expected, value):
        raise ValueError(f"{self.path}: field {field!r} must be {expected}, got {_show(value)}")

    def get(self, obj, field, key):
        if key not in obj:
            raise ValueError(f"{self.path}: field {field!r} is missing")
        return obj[key]

    def dict(self, obj, field, key, optional=False):
        value = self.get(obj, field, key) if not optional else obj.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            self.fail(field, "an object" + (" or null" if optional else ""), value)
        return value

    def count(self, obj, field, key):
        value = self.get(obj, field, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            self.fail(field, f"an integer in [0, {MAX_COUNT}]", value)
        return value

    def string(self, obj, field, key, choices=None, pattern=None):
        value = self.get(obj, field, key)
        if not isinstance(value, str) or (choices and value not in choices) \
                or (pattern and not pattern.match(value)):
            expected = f"one of {list(choices)}" if choices else "a string"
            self.fail(field, expected + (" of 64 hex digits" if pattern else ""), value)
        return value


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_manifest(path, manifest):
    """ValueError naming `path` and the field unless `manifest` (a parsed
    manifest.json whose format, version and checksum were checked) holds every
    field the loaders read, with the right types and a model config the
    constructor accepts."""
    f = _Fields(path)
    f.string(manifest, "fastformer_version", "fastformer_version")
    f.count(manifest, "step", "step")
    model = f.dict(manifest, "model", "model")
    f.string(model, "model.class", "class")
    f.string(model, "model.dtype", "dtype", choices=DTYPES)
    f.count(model, "model.rng_step", "rng_step")
    config = f.dict(model, "model.config", "config")
    for key in CONFIG_KEYS:
        f.get(config, f"model.config.{key}", key)
    try:
        check_config({key: config[key] for key in CONFIG_KEYS})
    except (TypeError, ValueError, MemoryError) as exc:
        raise ValueError(f"{path}: field 'model.config' is not a model this fastformer can build: {exc}") from None
    optimizer = f.dict(manifest, "optimizer", "optimizer", optional=True)
    if optimizer is not None:
        f.string(optimizer, "optimizer.type", "type")
        f.count(optimizer, "optimizer.steps", "steps")
        hyper = f.dict(optimizer, "optimizer.hyperparameters", "hyperparameters")
        for key, value in hyper.items():
            if not _is_hyperparameter(value):
                f.fail(f"optimizer.hyperparameters.{key}", "a finite number, a bool or a list of numbers", value)
    for key in ("schedule", "trainer", "vocab"):
        f.dict(manifest, key, key, optional=True)
    files = f.dict(manifest, "files", "files")
    kinds = ("model", "optimizer") if optimizer is not None else ("model",)
    kinds += ("ema",) if "ema" in files else ()  # the weights' moving average: optional
    for kind in kinds:
        entry = f.dict(files, f"files.{kind}", kind)
        f.string(entry, f"files.{kind}.name", "name")
        f.count(entry, f"files.{kind}.size", "size")
        f.string(entry, f"files.{kind}.sha256", "sha256", pattern=_SHA256)
    vocab = manifest.get("vocab")
    if vocab is not None and vocab.get("format") == SENTENCEPIECE_FORMAT:
        _check_sentencepiece(f, vocab, files)


def _check_sentencepiece(f, vocab, files):
    """A SentencePieceTokenizer's entry: its options, and one listed file per model whose hash it names."""
    joint = f.get(vocab, "vocab.joint", "joint")
    if not isinstance(joint, bool):
        f.fail("vocab.joint", "true or false", joint)
    model_type = f.get(vocab, "vocab.model_type", "model_type")
    if model_type is not None and not isinstance(model_type, str):
        f.fail("vocab.model_type", "a string or null", model_type)
    f.count(vocab, "vocab.src_vocab_size", "src_vocab_size")
    f.count(vocab, "vocab.tgt_vocab_size", "tgt_vocab_size")
    models = f.dict(vocab, "vocab.models", "models")
    sides = ["joint"] if joint else ["source", "target"]
    if sorted(models) != sorted(sides):
        f.fail("vocab.models", f"an object with the keys {sides}", models)
    for side in sides:
        digest = f.string(models, f"vocab.models.{side}", side, pattern=_SHA256)
        kind = f"tokenizer-{side}"
        entry = f.dict(files, f"files.{kind}", kind)
        f.string(entry, f"files.{kind}.name", "name")
        f.count(entry, f"files.{kind}.size", "size")
        if f.string(entry, f"files.{kind}.sha256", "sha256", pattern=_SHA256) != digest:
            f.fail(f"files.{kind}.sha256", f"the SHA-256 of vocab.models.{side}", entry["sha256"])


def _is_hyperparameter(value):
    if isinstance(value, list):
        return all(_is_hyperparameter(v) and not isinstance(v, (bool, list)) for v in value)
    if isinstance(value, bool):
        return True
    return isinstance(value, numbers.Real) and abs(value) < float("inf")
