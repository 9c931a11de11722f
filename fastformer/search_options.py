"""The options of beam search and sampling, checked once for both searches
(the NumPy reference `fastformer.reference.beam_search` and the compiled
`fastformer.model.beam`), so the two can never disagree about what they mean.

    beam_size        hypotheses kept per sentence (1: greedy, or sampling)
    num_hypotheses   n-best: how many finished hypotheses to return (<= beam_size)
    length_penalty   alpha of the length penalty lp(L) = ((offset + L) / (offset + 1)) ** alpha
    length_offset    offset 5 is GNMT's (Wu et al. 2016); offset 0 gives L ** alpha, which with
                     alpha 1 is the average log-probability (CTranslate2's and Marian's default,
                     and fastformer's before these options). alpha 0: the raw log-prob sum.
    min_len          eos is not allowed before min_len tokens were generated
    temperature, top_k, top_p, seed
                     sampling (beam_size 1 only): logits / temperature, restricted to the
                     top_k most likely tokens (0: all) and then to the smallest set whose
                     probability reaches top_p; uniform draws from Philox keyed by seed
                     (so a draw depends on (seed, sentence, step) only, never on threads).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SearchOptions:
    beam_size: int = 1
    num_hypotheses: int = 1
    length_penalty: float = 1.0
    length_offset: float = 0.0
    min_len: int = 0
    sampling: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def penalty(self, length):
        """lp(length), float64 (length: int or array)."""
        if self.length_penalty == 0.0:
            return np.ones_like(np.asarray(length, dtype=np.float64))
        return ((self.length_offset + np.asarray(length, dtype=np.float64)) / (self.length_offset + 1.0)) \
            ** self.length_penalty


def _int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_max_len(max_len, positions):
    """max_len: generated tokens at most; the decoder reads position t at step t,
    so it must be <= the model's positions (its max_len)."""
    max_len = _int("max_len", max_len, 1)
    if max_len > positions:
        raise ValueError(f"max_len={max_len} is more than the model's {positions} positions "
                         f"(its max_len): decode at most {positions} tokens")
    return max_len


def search_options(beam_size=1, num_hypotheses=1, length_penalty=1.0, length_offset=0.0, min_len=0,
                   temperature=None, top_k=None, top_p=None, seed=None, max_len=None):
    """Checked SearchOptions, or TypeError/ValueError naming the option.
    Sampling is on when any of temperature, top_k, top_p or seed is given."""
    beam_size = _int("beam_size", beam_size, 1)
    num_hypotheses = _int("num_hypotheses", num_hypotheses, 1)
    if num_hypotheses > beam_size:
        raise ValueError(f"num_hypotheses={num_hypotheses} is more than beam_size={beam_size}: "
                         "a beam search returns at most beam_size hypotheses")
    length_penalty = _real("length_penalty", length_penalty)
    length_offset = _real("length_offset", length_offset)
    if length_offset < 0:
        raise ValueError(f"length_offset must be >= 0, got {length_offset}")
    min_len = _int("min_len", min_len, 0)
    if max_len is not None and min_len > max_len:
        raise ValueError(f"min_len={min_len} is more than max_len={max_len}")
    sampling = any(v is not None for v in (temperature, top_k, top_p, seed))
    if sampling and beam_size != 1:
        raise ValueError(f"sampling (temperature, top_k, top_p, seed) needs beam_size=1, got {beam_size}")
    temperature = 1.0 if temperature is None else _real("temperature", temperature)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    top_k = 0 if top_k is None else _int("top_k", top_k, 0)
    top_p = 1.0 if top_p is None else _real("top_p", top_p)
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    seed = 0 if seed is None else _int("seed", seed, 0)
    if seed >= 1 << 64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    return SearchOptions(beam_size, num_hypotheses, length_penalty, length_offset, min_len, sampling,
                         temperature, top_k, top_p, seed)
