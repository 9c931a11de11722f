"""The tokenizer a checkpoint was trained with, rebuilt from its manifest.

Every tokenizer has the interface of `Vocabulary`: pad_id, bos_id, eos_id,
src_vocab_size, tgt_vocab_size, encode_source(text), encode_target(text),
decode(target ids), to_dict(), fingerprint(), kind.
"""
from fastformer.data.vocab import FORMAT as CHAR_FORMAT
from fastformer.data.vocab import Vocabulary


def tokenizer_from_manifest(manifest, directory):
    """The tokenizer saved with a checkpoint (`manifest` read from `directory`),
    or None when it was saved without one. ValueError for an unknown kind."""
    saved = manifest.get("vocab")
    if saved is None:
        return None
    if isinstance(saved, dict) and saved.get("format") == CHAR_FORMAT:
        return Vocabulary.from_dict(saved)
    kind = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
    raise ValueError(f"{directory}: the checkpoint's tokenizer has an unknown format {kind!r}")
