"""The tokenizer a checkpoint was trained with, rebuilt from its manifest.

Every tokenizer has the interface of `Vocabulary`: kind, pad_id, bos_id,
eos_id, src_vocab_size, tgt_vocab_size, encode_source(text),
encode_target(text), encode_source_many(texts), encode_target_many(texts),
decode(target ids), src_tokens(), tgt_tokens(), to_dict(), fingerprint().
"""
from fastformer.data.subword import FORMAT as SENTENCEPIECE_FORMAT
from fastformer.data.subword import SentencePieceTokenizer
from fastformer.data.vocab import FORMAT as CHAR_FORMAT
from fastformer.data.vocab import Vocabulary


def tokenizer_from_manifest(manifest, directory):
    """The tokenizer saved with a checkpoint (`manifest` read from `directory`),
    or None when it was saved without one. A sentencepiece tokenizer's model
    files are read from `directory` and checked against the manifest's sizes
    and hashes. ValueError (naming the file) for a missing or altered model
    file, and for an unknown kind."""
    saved = manifest.get("vocab")
    if saved is None:
        return None
    if isinstance(saved, dict) and saved.get("format") == CHAR_FORMAT:
        return Vocabulary.from_dict(saved)
    if isinstance(saved, dict) and saved.get("format") == SENTENCEPIECE_FORMAT:
        from fastformer.checkpoint import read_data_file

        files, sides = manifest.get("files"), saved.get("models")
        if not isinstance(files, dict) or not isinstance(sides, dict):
            raise ValueError(f"{directory}: the manifest's sentencepiece tokenizer names no model files")
        models = {}
        for side in sides:
            entry = files.get(f"tokenizer-{side}")
            if not isinstance(entry, dict):
                raise ValueError(f"{directory}: the manifest lists no {side} sentencepiece model file")
            models[side] = read_data_file(directory, entry, "tokenizer")
        try:
            return SentencePieceTokenizer.from_model_files(saved, models)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{directory}: {exc}") from None
    kind = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
    raise ValueError(f"{directory}: the checkpoint's tokenizer has an unknown format {kind!r}")
