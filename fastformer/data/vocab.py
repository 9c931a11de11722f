"""A character-level vocabulary: pad=0, bos=1, eos=2, then one id per symbol."""
import hashlib
import json
import os

from fastformer._atomic import atomic_write_bytes

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
FORMAT = "fastformer-char-vocab"


def content_ids(ids, size):
    """The ids of a decoded row that carry text: up to the first eos, pad and
    bos skipped; ValueError for an id outside [0, size)."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i in (PAD_ID, BOS_ID):
            continue
        if not 0 <= i < size:
            raise ValueError(f"token id {i} is out of the vocabulary's range [0, {size})")
        out.append(i)
    return out


class Vocabulary:
    """Maps single characters to ids 3, 4, ... (ids 0-2 are pad, bos, eos).

    One vocabulary serves source and target (the model's src and tgt vocab
    sizes are both `len(vocab)`).
    """

    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, symbols):
        symbols = list(symbols)
        for s in symbols:
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(f"vocabulary symbols must be single characters, got {s!r}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be distinct")
        self.symbols = symbols
        self._ids = {s: i + len(SPECIALS) for i, s in enumerate(symbols)}

    @classmethod
    def from_texts(cls, texts):
        """The sorted set of characters in `texts` (an iterable of strings)."""
        chars = set()
        for text in texts:
            chars.update(text)
        return cls(sorted(chars))

    def __len__(self):
        return len(SPECIALS) + len(self.symbols)

    # ----- the tokenizer interface (shared with fastformer.data.subword) --------

    kind = "char"

    @property
    def src_vocab_size(self):
        return len(self)

    @property
    def tgt_vocab_size(self):
        return len(self)

    def encode_source(self, text):
        """Source text -> ids (no bos/eos); one vocabulary serves both sides."""
        return self.encode(text)

    def encode_target(self, text):
        """Target text -> ids (no bos/eos)."""
        return self.encode(text)

    def encode_source_many(self, texts):
        """Many source texts -> a list of id lists."""
        return [self.encode(text) for text in texts]

    def encode_target_many(self, texts):
        return [self.encode(text) for text in texts]

    def src_tokens(self):
        """Token strings indexed by id: the specials, then the characters."""
        return list(SPECIALS) + self.symbols

    def tgt_tokens(self):
        return list(SPECIALS) + self.symbols

    def fingerprint(self):
        """SHA-256 of the vocabulary's content: a cache key for data tokenized with it."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.symbols == other.symbols

    def __repr__(self):
        return f"Vocabulary({''.join(self.symbols)!r})"

    def encode(self, text):
        """str -> list of ids (no bos/eos). ValueError names an unknown character."""
        try:
            return [self._ids[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        """ids -> str: stops at the first eos, skips pad and bos."""
        return "".join(self.symbols[i - len(SPECIALS)] for i in content_ids(ids, len(self)))

    # ----- persistence (JSON, no pickle) ------------------------------------------

    def to_dict(self):
        return {"format": FORMAT, "specials": list(SPECIALS), "symbols": "".join(self.symbols)}

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a fastformer character vocabulary (format {FORMAT!r} expected)")
        if data.get("specials") != list(SPECIALS):
            raise ValueError(f"vocabulary specials must be {list(SPECIALS)}, got {data.get('specials')!r}")
        if not isinstance(data.get("symbols"), str):
            raise ValueError("vocabulary 'symbols' must be a string of characters")
        return cls(data["symbols"])

    def save(self, path):
        """Write the vocabulary as JSON (atomically)."""
        atomic_write_bytes(path, json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, path):
        """Read a vocabulary saved by `save` (ValueError for a bad file, OSError if unreadable)."""
        with open(os.fspath(path), "rb") as f:
            raw = f.read()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON vocabulary file ({exc})") from None
        return cls.from_dict(data)
