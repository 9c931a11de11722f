"""Translate many lines with a trained model: the Python side of
`fastformer translate`.

    translate(model, tokenizer, lines, beam_size=4, ...) -> Translations
        per input line its n-best list of (text, score), best first, in
        input order, and `.stats` (sentences/s, target tokens/s).
    translate_ids(model, sources, bos_id, eos_id, ...) -> the same on token ids.

How it goes:
- Inputs are sorted by length and cut into batches by a token budget
  (`fastformer.data.token_batches`: batch size x longest source <=
  max_tokens; a source longer than the budget travels alone), decoded, and
  put back in input order. A line that encodes to no tokens is not decoded:
  its output is one empty hypothesis scored 0.0.
- Beam search (beam_size 1 is greedy), scored as the searches of
  `fastformer.reference.beam_search`: log-probability sum / lp(length),
  lp(L) = ((5 + L) / 6) ** length_penalty (GNMT; 0 = the raw sum), the
  length counting the eos.
- Each sentence's output is capped at min(positions - 1, floor(max_len_a *
  source_length + max_len_b)) tokens, per sentence (so a line's output never
  depends on the lines batched with it): a hypothesis reaching its cap gets
  eos as its only possible next token (log-probability 0), so it ends with
  cap tokens + eos, scored by lp(cap + 1). positions - 1 leaves the model's
  last position to that eos.
- A source longer than the model's positions is a ValueError naming its line
  (never silently truncated).
- The compiled `fastformer.Transformer` runs the compiled search over its
  key/value cache (`fastformer.model.beam`); any other model with the
  fastformer API (the NumPy reference) the reference search over
  `PrefixDecoder`. The two agree token for token up to float32 rounding.
"""
import math
import time
from dataclasses import dataclass

import numpy as np

from fastformer.data.token_batches import token_budget_batches
from fastformer.search_options import search_options

GNMT_LENGTH_OFFSET = 5.0


@dataclass
class TranslationStats:
    """What a translate call did: sentences (input lines), their source and
    target tokens (the best hypotheses', eos not counted), decoded batches,
    the most padded source tokens in one batch, and wall-clock seconds."""
    sentences: int = 0
    source_tokens: int = 0
    target_tokens: int = 0
    batches: int = 0
    max_batch_tokens: int = 0
    seconds: float = 0.0

    @property
    def sentences_per_second(self):
        return self.sentences / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_second(self):
        return self.target_tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self):
        return (f"translated {self.sentences} sentences ({self.target_tokens} target tokens) in "
                f"{self.seconds:.2f} s: {self.sentences_per_second:.1f} sentences/s, "
                f"{self.tokens_per_second:.1f} target tokens/s ({self.batches} batches)")


class Translations(list):
    """A list with one n-best list per input line, [(text or token ids, score), ...]
    best first, and `stats`, a TranslationStats."""

    def __init__(self, items, stats):
        super().__init__(items)
        self.stats = stats


def _check_real(name, value, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (low is not None and value < low):
        raise ValueError(f"{name} must be a finite number >= {low}, got {value}"
                         if low is not None else f"{name} must be finite, got {value}")
    return value


def output_caps(lengths, positions, max_len_a, max_len_b):
    """Per-sentence output caps: min(positions - 1, floor(a * length + b)), at least 1."""
    lengths = np.asarray(lengths, dtype=np.float64)
    caps = np.floor(max_len_a * lengths + max_len_b)
    return np.clip(caps, 1, max(1, positions - 1)).astype(np.int64)


class CappedDecoder:
    """A step decoder (see fastformer.decoding) that lets a sentence's rows
    choose only eos once they hold `caps[sentence]` tokens. It forwards
    reorder (the reference search) and select (the compiled one, which also
    drops finished sentences) to the decoder it wraps, keeping track of which
    sentence each row decodes."""

    def __init__(self, decoder, caps, beam, eos_id):
        self.decoder, self.caps, self.beam, self.eos_id = decoder, np.asarray(caps), beam, eos_id
        self.sentences = np.arange(len(caps))  # the sentences of the rows, beam rows each
        self.t = 0

    def step(self, tokens):
        logits = self.decoder.step(tokens)
        capped = np.repeat(self.caps[self.sentences] <= self.t, self.beam)
        if capped.any():
            logits = np.array(logits, copy=True)
            logits[capped] = -np.inf
            logits[capped, self.eos_id] = 0.0
        self.t += 1
        return logits

    def reorder(self, rows):
        self.decoder.reorder(rows)

    def select(self, rows, sentences=None):
        self.decoder.select(rows, sentences)
        if sentences is not None:
            self.sentences = self.sentences[np.asarray(sentences)]


def _search(model, src, mask, caps, bos_id, eos_id, opts):
    """Hypotheses of one padded batch, each sentence capped at caps[b] tokens."""
    import fastformer
    from fastformer.decoding import check_generate_args

    max_len = int(caps.max()) + 1  # room for the eos after the longest cap
    src, max_len, mask, _ = check_generate_args(model, src, max_len, bos_id, eos_id, opts.beam_size, mask)
    B, K = src.shape[0], opts.beam_size
    if isinstance(model, fastformer.Transformer):
        from fastformer.model.beam import beam_search
        from fastformer.model.generate import cached_decoder

        with model._lock:  # the decoder uses the model's workspace, as in generate_hypotheses
            was_training = model.training
            model.eval()
            try:
                decoder = CappedDecoder(cached_decoder(model, src, mask, K, max_len), caps, K, eos_id)
                return beam_search(decoder, B, max_len, bos_id, eos_id, opts)
            finally:
                model.train(was_training)
    from fastformer.decoding import PrefixDecoder
    from fastformer.reference.beam_search import beam_search

    if K > 1:
        src = np.repeat(src, K, axis=0)
        mask = None if mask is None else np.repeat(mask, K, axis=0)
    was_training = model.training
    model.eval()
    try:
        return beam_search(CappedDecoder(PrefixDecoder(model, src, mask), caps, K, eos_id), B, max_len,
                           bos_id, eos_id, opts)
    finally:
        model.train(was_training)


def translate_ids(model, sources, bos_id, eos_id, pad_id=0, beam_size=4, length_penalty=1.0, n_best=1,
                  max_tokens=8192, max_len_a=1.5, max_len_b=10, max_batch=None, where="input"):
    """sources: a list of source id lists -> Translations of (int64 token array
    without eos, score) n-best lists (module doc). `where` names the input in
    error messages ("input, line 3: ...")."""
    start = time.perf_counter()
    for name, value in (("beam_size", beam_size), ("n_best", n_best)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_best > beam_size:
        raise ValueError(f"n_best={n_best} is more than beam_size={beam_size}: a beam search keeps at most "
                         "beam_size hypotheses")
    opts = search_options(beam_size=beam_size, num_hypotheses=n_best, length_penalty=length_penalty,
                          length_offset=GNMT_LENGTH_OFFSET)
    max_len_a = _check_real("max_len_a", max_len_a, 0.0)
    max_len_b = _check_real("max_len_b", max_len_b, 0.0)
    sources = [list(s) for s in sources]
    positions = model.max_len
    for i, s in enumerate(sources):
        if len(s) > positions:
            raise ValueError(f"{where}, line {i + 1}: {len(s)} source tokens, the model takes at most "
                             f"{positions} (its max_len)")
    lengths = np.array([len(s) for s in sources], dtype=np.int64)
    caps = output_caps(lengths, positions, max_len_a, max_len_b)
    stats = TranslationStats(sentences=len(sources), source_tokens=int(lengths.sum()))
    out = [[(np.zeros(0, np.int64), 0.0)] for _ in sources]  # empty sources stay this
    todo = np.flatnonzero(lengths > 0)
    for batch in token_budget_batches(lengths[todo], max_tokens, max_batch):
        rows = todo[batch]
        S = int(lengths[rows].max())
        src = np.full((len(rows), S), pad_id, dtype=np.int64)
        mask = np.ones((len(rows), S), dtype=bool)
        for b, i in enumerate(rows):
            src[b, :lengths[i]], mask[b, :lengths[i]] = sources[i], False
        hyps = _search(model, src, mask, caps[rows], bos_id, eos_id, opts)
        for i, tokens, scores in zip(rows, hyps.tokens, hyps.scores):
            out[i] = [(t[:-1] if len(t) and t[-1] == eos_id else t, float(s)) for t, s in zip(tokens, scores)]
            stats.target_tokens += len(out[i][0][0])
        stats.batches += 1
        stats.max_batch_tokens = max(stats.max_batch_tokens, len(rows) * S)
    stats.seconds = time.perf_counter() - start
    return Translations(out, stats)


def encode_sources(tokenizer, lines, where="input"):
    """lines -> source id lists, a bad line named (ValueError "input, line N: ...")."""
    many = getattr(tokenizer, "encode_source_many", None)
    if many is not None:
        try:
            return [list(ids) for ids in many(lines)]
        except ValueError:
            pass  # find the line at fault, below
    encoded = []
    for number, line in enumerate(lines, start=1):
        try:
            encoded.append(list(tokenizer.encode_source(line)))
        except ValueError as exc:
            raise ValueError(f"{where}, line {number}: {exc}") from None
    return encoded


def translate(model, tokenizer, lines, beam_size=4, length_penalty=1.0, n_best=1, max_tokens=8192,
              max_len_a=1.5, max_len_b=10, max_batch=None, where="input"):
    """Translate text lines -> Translations: per line its n-best list of
    (detokenized text, score), best first, in input order; `.stats` times the
    whole call (encoding, decoding, detokenizing). tokenizer: the interface of
    `fastformer.data.Vocabulary` (encode_source, decode, bos_id, eos_id,
    pad_id). Options as in the module doc; ValueError/TypeError name the
    option or the line (`where`, line N)."""
    start = time.perf_counter()
    lines = list(lines)
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise TypeError(f"{where}, line {i + 1}: expected a str, got {type(line).__name__}")
    for side in ("src", "tgt"):
        theirs, ours = getattr(tokenizer, f"{side}_vocab_size", None), getattr(model, f"{side}_vocab_size")
        if theirs is not None and theirs != ours:
            raise ValueError(f"the tokenizer's {side} vocabulary has {theirs} tokens, the model's {ours}")
    sources = encode_sources(tokenizer, lines, where)
    result = translate_ids(model, sources, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id,
                           beam_size=beam_size, length_penalty=length_penalty, n_best=n_best,
                           max_tokens=max_tokens, max_len_a=max_len_a, max_len_b=max_len_b,
                           max_batch=max_batch, where=where)
    texts = [[(tokenizer.decode(tokens.tolist()) if len(tokens) else "", score) for tokens, score in nbest]
             for nbest in result]
    result.stats.seconds = time.perf_counter() - start
    return Translations(texts, result.stats)
