"""Subword tokenizers trained with SentencePiece (unigram or BPE), joint or one per side.

Ids: pad 0, bos 1, eos 2, unk 3, then the pieces. Models are trained in
memory (no files), on a seeded sample of at most `max_sentences` lines, with
one thread, so the same data and seed give the same model bytes on any machine.
"""
import hashlib
import io
import re

import numpy as np
import sentencepiece as spm

from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID, content_ids

FORMAT = "fastformer-sentencepiece"
UNK_ID = 3
MODEL_TYPES = ("unigram", "bpe")
SIDES_JOINT, SIDES_SEPARATE = ("joint",), ("source", "target")

# Phrases of sentencepiece's RuntimeError about the vocabulary size (checked with 0.2).
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def _processor(model, side):
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(bytes(model))
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"the {side} model is not a sentencepiece model: {exc}") from None
    specials = [processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id()]
    if specials != [PAD_ID, BOS_ID, EOS_ID, UNK_ID]:
        raise ValueError(f"the {side} sentencepiece model has pad/bos/eos/unk ids {specials}, "
                         f"fastformer needs {[PAD_ID, BOS_ID, EOS_ID, UNK_ID]}")
    return processor


def _texts(texts, name):
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return texts


def _train_model(texts, vocab_size, model_type, side, character_coverage, split_digits):
    """One sentencepiece model trained on `texts` -> its serialized bytes."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"no non-empty {side} text to train a tokenizer on")
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=writer, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage, split_digits=split_digits,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            # One thread and no sampling inside sentencepiece: the bytes (which
            # record the options) depend on the data only; we sample ourselves.
            num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
            minloglevel=2)
    except RuntimeError as exc:
        message = str(exc)
        large, small = _TOO_LARGE.search(message), _TOO_SMALL.search(message)
        if large:
            raise ValueError(f"vocab_size {vocab_size} is too large for the {side} data: "
                             f"it supports at most {large.group(2)} (use vocab_size <= {large.group(2)})") from None
        if small:
            raise ValueError(f"vocab_size {vocab_size} is too small for the {side} data: it has "
                             f"{small.group(2)} distinct characters and special tokens "
                             f"(use vocab_size >= {small.group(2)})") from None
        raise ValueError(f"sentencepiece could not train the {side} tokenizer "
                         f"(vocab_size {vocab_size}): {message}") from None
    return writer.getvalue()


class SentencePieceTokenizer:
    """Source and target sentencepiece models behind the tokenizer interface
    of `Vocabulary` (kind "sentencepiece").

    source_model, target_model: serialized sentencepiece models (bytes) with
    pad 0, bos 1, eos 2, unk 3; without target_model (or with the same bytes)
    one joint model serves both sides. model_type is recorded in the manifest.
    """

    kind = "sentencepiece"
    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, source_model, target_model=None, *, model_type=None):
        if model_type is not None and not isinstance(model_type, str):
            raise TypeError(f"model_type must be a str or None, got {type(model_type).__name__}")
        for side, model in (("source", source_model), ("target", target_model)):
            if not isinstance(model, (bytes, bytearray)) and (side == "source" or model is not None):
                raise TypeError(f"the {side} sentencepiece model must be bytes, got {type(model).__name__}")
        self.joint = target_model is None or bytes(target_model) == bytes(source_model)
        self.model_type = model_type
        self._models = {"source": bytes(source_model)}
        self._models["target"] = self._models["source"] if self.joint else bytes(target_model)
        self._source = _processor(self._models["source"], "joint" if self.joint else "source")
        self._target = self._source if self.joint else _processor(self._models["target"], "target")

    @classmethod
    def train(cls, sources, targets, vocab_size, model_type="unigram", joint=False, seed=0,
              max_sentences=1_000_000, character_coverage=1.0, split_digits=True):
        """Train on parallel texts (sequences of str of equal length).

        vocab_size: pieces per model, specials included (a joint model has
        that many for both sides). At most `max_sentences` pairs, drawn with
        numpy's default_rng(seed), are used, so a corpus of millions of lines
        trains quickly. ValueError naming vocab_size when the data cannot
        support it (with the largest or smallest size sentencepiece accepts).
        character_coverage: the share of characters kept as pieces (the rest
        become unk; 1.0 keeps all, lower it for scripts with huge alphabets);
        split_digits: every digit its own piece, so numbers are read (and
        copied) digit by digit instead of in chunks the corpus happened to favour.
        """
        sources, targets = _texts(sources, "sources"), _texts(targets, "targets")
        if len(sources) != len(targets):
            raise ValueError(f"sources and targets must have the same length, got {len(sources)} and {len(targets)}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise TypeError(f"vocab_size must be an integer, got {type(vocab_size).__name__}")
        if vocab_size <= UNK_ID + 1:
            raise ValueError(f"vocab_size must be larger than the {UNK_ID + 1} special tokens, got {vocab_size}")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {list(MODEL_TYPES)}, got {model_type!r}")
        if isinstance(max_sentences, bool) or not isinstance(max_sentences, (int, np.integer)) or max_sentences < 1:
            raise ValueError(f"max_sentences must be a positive integer, got {max_sentences!r}")
        if not 0 < character_coverage <= 1:
            raise ValueError(f"character_coverage must be in (0, 1], got {character_coverage!r}")
        if len(sources) > max_sentences:
            keep = np.sort(np.random.default_rng(seed).choice(len(sources), int(max_sentences), replace=False))
            sources, targets = [sources[i] for i in keep], [targets[i] for i in keep]
        vocab_size = int(vocab_size)

        def train_side(texts, side):
            return _train_model(texts, vocab_size, model_type, side, character_coverage, bool(split_digits))

        if joint:
            return cls(train_side(sources + targets, "joint"), model_type=model_type)
        return cls(train_side(sources, "source"), train_side(targets, "target"), model_type=model_type)

    # ----- the tokenizer interface -------------------------------------------------

    @property
    def src_vocab_size(self):
        return self._source.get_piece_size()

    @property
    def tgt_vocab_size(self):
        return self._target.get_piece_size()

    def encode_source(self, text):
        """Source text -> ids (no bos/eos); unknown characters become unk (3)."""
        return self._source.encode(self._text(text))

    def encode_target(self, text):
        """Target text -> ids (no bos/eos)."""
        return self._target.encode(self._text(text))

    def encode_source_many(self, texts):
        """Many source texts -> a list of id lists (sentencepiece encodes them in parallel)."""
        return self._source.encode(_texts(texts, "texts"))

    def encode_target_many(self, texts):
        return self._target.encode(_texts(texts, "texts"))

    def decode(self, ids):
        """Target ids -> detokenized text: stops at the first eos, skips pad and bos."""
        return self._target.decode(content_ids(ids, self.tgt_vocab_size))

    def decode_source(self, ids):
        return self._source.decode(content_ids(ids, self.src_vocab_size))

    def src_tokens(self):
        """Token strings indexed by id (for CTranslate2's vocabulary)."""
        return [self._source.id_to_piece(i) for i in range(self.src_vocab_size)]

    def tgt_tokens(self):
        return [self._target.id_to_piece(i) for i in range(self.tgt_vocab_size)]

    @staticmethod
    def _text(text):
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return text

    # ----- persistence: the model bytes live in files beside the manifest ----------

    def sides(self):
        """The names of the model files: ("joint",) or ("source", "target")."""
        return SIDES_JOINT if self.joint else SIDES_SEPARATE

    def model_files(self):
        """{side: serialized model bytes}, side as in `sides()`."""
        if self.joint:
            return {"joint": self._models["source"]}
        return dict(self._models)

    def to_dict(self):
        """JSON-able description (the manifest's "vocab"); the models themselves
        are separate files whose SHA-256 is listed under "models"."""
        return {"format": FORMAT, "joint": self.joint, "model_type": self.model_type,
                "src_vocab_size": self.src_vocab_size, "tgt_vocab_size": self.tgt_vocab_size,
                "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID,
                "models": {side: hashlib.sha256(data).hexdigest() for side, data in self.model_files().items()}}

    @classmethod
    def from_model_files(cls, description, models):
        """Rebuild from `to_dict()`'s output and {side: bytes}; ValueError when a
        model's SHA-256 differs from the description's."""
        expected = description["models"]
        if set(models) != set(expected):
            raise ValueError(f"sentencepiece models {sorted(models)} given, {sorted(expected)} expected")
        for side, data in models.items():
            if hashlib.sha256(data).hexdigest() != expected[side]:
                raise ValueError(f"the {side} sentencepiece model's SHA-256 does not match its description")
        if "joint" in models:
            tokenizer = cls(models["joint"], model_type=description.get("model_type"))
        else:
            tokenizer = cls(models["source"], models["target"], model_type=description.get("model_type"))
        if tokenizer.to_dict() != description:
            raise ValueError("the sentencepiece models do not match their description "
                             f"(vocabulary sizes {tokenizer.src_vocab_size}, {tokenizer.tgt_vocab_size})")
        return tokenizer

    def fingerprint(self):
        """SHA-256 over the model bytes and options: a cache key for data tokenized with it."""
        h = hashlib.sha256(FORMAT.encode("utf-8"))
        for side, data in sorted(self.model_files().items()):
            h.update(side.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()

    def __eq__(self, other):
        return isinstance(other, SentencePieceTokenizer) and self.model_files() == other.model_files()

    def __hash__(self):
        return hash(self.fingerprint())

    def __repr__(self):
        shape = "joint" if self.joint else "separate"
        return (f"SentencePieceTokenizer({shape}, {self.model_type}, src_vocab_size={self.src_vocab_size}, "
                f"tgt_vocab_size={self.tgt_vocab_size})")
