"""Validation of a translation model: teacher-forced loss per target token,
and BLEU and chrF (sacrebleu) of its detokenized beam-search output.

    validator = Validator(sources, references, tokenizer, beam_size=4)
    validator.validate(model)  # {"valid_loss", "valid_bleu", "valid_chrf", "valid_examples", ...}

Trainer.fit(valid=validator, valid_every=..., valid_metric=..., early_stopping=...)
runs it during training.
"""
import numbers

import numpy as np

from fastformer.data.batch import IGNORE_INDEX, make_batch
from fastformer.data.token_batches import token_budget_batches
from fastformer.losses import LogitsBuffer, cross_entropy
from fastformer.translate import translate_ids

# valid_metric -> (history key, higher is better)
METRICS = {"bleu": ("valid_bleu", True), "chrf": ("valid_chrf", True), "loss": ("valid_loss", False)}


def check_metric(name):
    if name not in METRICS:
        raise ValueError(f"valid_metric must be one of {sorted(METRICS)}, got {name!r}")
    return name


def improves(metric, score, best):
    """Whether `score` of `metric` is strictly better than `best` (None: nothing yet)."""
    if best is None:
        return True
    return score > best if METRICS[metric][1] else score < best


def _encode_all(encode_many, encode_one, items, what):
    """Texts -> id lists (through the tokenizer's batch encoder when it has one);
    id lists pass through."""
    items = list(items)
    if all(isinstance(x, str) for x in items):
        return [list(ids) for ids in (encode_many(items) if encode_many else map(encode_one, items))]
    try:
        return [[int(i) for i in x] for x in items]
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be all texts (str) or all lists of token ids") from None


class Validator:
    """Loss, BLEU and chrF of a model on a fixed validation set.

    sources: source texts (str) or source id lists; references: the target
    texts (str), one per source; tokenizer: the fastformer tokenizer
    interface (encode_source(_many), encode_target(_many), decode, pad/bos/eos
    ids); target_ids: the references' id lists when already encoded (else
    tokenizer.encode_target of each). beam_size, max_tokens, max_len_a,
    max_len_b, length_penalty: decoding, as `fastformer.translate.translate_ids`
    does it (and so `fastformer translate`: the same options give the same text);
    translate: a callable (model, source id lists) -> list of texts to decode
    with instead (e.g. fastformer.translate's); bleu_kwargs / chrf_kwargs:
    passed to sacrebleu.metrics.BLEU / CHRF (default: sacrebleu's defaults,
    13a tokenization, chrF with char order 6, word order 0).

    Sources longer than the model's max_len positions are cut to fit for
    the loss and decoding (targets to max_len - 1 tokens plus eos), and
    counted in "valid_truncated".
    """

    def __init__(self, sources, references, tokenizer, *, target_ids=None, beam_size=4, max_tokens=4096,
                 max_len_a=1.5, max_len_b=10, length_penalty=1.0, translate=None,
                 bleu_kwargs=None, chrf_kwargs=None):
        import sacrebleu  # a runtime dependency, imported where it is used

        references = list(references)
        if not references or not all(isinstance(r, str) for r in references):
            raise ValueError("references must be a non-empty list of texts (str)")
        self.tokenizer = tokenizer
        self.sources = _encode_all(getattr(tokenizer, "encode_source_many", None), tokenizer.encode_source,
                                   sources, "sources")
        if len(self.sources) != len(references):
            raise ValueError(f"sources and references differ in length: {len(self.sources)} sources, "
                             f"{len(references)} references")
        self.references = references
        targets = references if target_ids is None else target_ids
        self.targets = _encode_all(getattr(tokenizer, "encode_target_many", None), tokenizer.encode_target,
                                   targets, "target_ids")
        if len(self.targets) != len(references):
            raise ValueError(f"target_ids has {len(self.targets)} entries for {len(references)} references")
        for name, value in (("beam_size", beam_size), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if translate is not None and not callable(translate):
            raise TypeError("translate must be a callable (model, source id lists) -> texts, or None")
        self.beam_size, self.max_tokens = int(beam_size), int(max_tokens)
        self.decoding = dict(max_len_a=float(max_len_a), max_len_b=float(max_len_b),
                             length_penalty=float(length_penalty))
        self._translate = translate
        self._bleu = sacrebleu.metrics.BLEU(**(bleu_kwargs or {}))
        self._chrf = sacrebleu.metrics.CHRF(**(chrf_kwargs or {}))

    def __len__(self):
        return len(self.references)

    def _fitted(self, model):
        """(sources, targets) cut to the model's positions, and how many were cut."""
        limit = getattr(model, "max_len", None)
        if limit is None:
            return self.sources, self.targets, 0
        sources = [s[:limit] for s in self.sources]
        targets = [t[:limit - 1] for t in self.targets]
        cut = sum(len(s) > limit or len(t) > limit - 1 for s, t in zip(self.sources, self.targets))
        return sources, targets, cut

    def loss(self, model, sources=None, targets=None):
        """Teacher-forced cross-entropy per target token (eos included, no label
        smoothing) -> (loss, target tokens)."""
        if sources is None:
            sources, targets, _ = self._fitted(model)
        tok = self.tokenizer
        loss_sum, tokens = 0.0, 0
        buffer = LogitsBuffer()
        lengths = [max(len(s), len(t) + 1) for s, t in zip(sources, targets)]
        for index in token_budget_batches(np.array(lengths, dtype=np.int64), self.max_tokens):
            batch = make_batch([sources[i] for i in index], [targets[i] for i in index],
                               tok.pad_id, tok.bos_id, tok.eos_id)
            logits = buffer.forward(model, batch)
            loss, _ = cross_entropy(logits, batch.tgt_out, out=logits)  # the gradient is not kept
            n = int((batch.tgt_out != IGNORE_INDEX).sum())
            loss_sum += loss * n
            tokens += n
        return loss_sum / tokens, tokens

    def translate(self, model, sources=None):
        """The model's detokenized translations of the validation sources."""
        if sources is None:
            sources = self._fitted(model)[0]
        if self._translate is not None:
            return list(self._translate(model, sources))
        tok = self.tokenizer
        best = translate_ids(model, sources, tok.bos_id, tok.eos_id, tok.pad_id, beam_size=self.beam_size,
                             max_tokens=self.max_tokens, **self.decoding)
        return [tok.decode(hyps[0][0]) for hyps in best]

    def validate(self, model):
        """-> {"valid_loss", "valid_bleu", "valid_chrf", "valid_examples", "valid_tokens"}
        (plus "valid_truncated" when sources or targets were cut to fit).
        Runs in eval mode; the model's mode, weights and rng_step are left as they were."""
        was_training, rng_step = model.training, getattr(model, "rng_step", None)
        model.eval()
        try:
            sources, targets, cut = self._fitted(model)
            loss, tokens = self.loss(model, sources, targets)
            hypotheses = self.translate(model, sources)
        finally:
            model.train(was_training)
            if rng_step is not None:
                model.rng_step = rng_step
        if len(hypotheses) != len(self.references):
            raise ValueError(f"translate returned {len(hypotheses)} texts for {len(self.references)} sources")
        metrics = {"valid_loss": float(loss),
                   "valid_bleu": float(self._bleu.corpus_score(hypotheses, [self.references]).score),
                   "valid_chrf": float(self._chrf.corpus_score(hypotheses, [self.references]).score),
                   "valid_examples": len(self.references), "valid_tokens": tokens}
        if cut:
            metrics["valid_truncated"] = cut
        self.last_hypotheses = hypotheses
        return metrics
