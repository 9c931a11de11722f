"""Training data: built-in synthetic tasks and a built-in translation task,
user text files and parallel corpora (as id arrays), a character vocabulary
and sentencepiece subword tokenizers, length-bucketed batching, token-budget
training batches, and token-budget batches for decoding."""
from fastformer.data.batch import IGNORE_INDEX, Batch, make_batch, target_sequences
from fastformer.data.bucketing import BucketedBatches, sorted_batches
from fastformer.data.corpus import CorpusFiles, FilterReport, TokenizedCorpus, iter_pairs, load_corpus
from fastformer.data.subword import SentencePieceTokenizer
from fastformer.data.tasks import TASKS, SyntheticTask
from fastformer.data.textfile import DataFileError, TextPairsData, read_pairs
from fastformer.data.token_batches import map_in_batches, token_budget_batches
from fastformer.data.token_budget import TokenBudgetBatches, fixed_budget_batches
from fastformer.data.tokenizers import tokenizer_from_manifest
from fastformer.data.translation_data import TranslationData
from fastformer.data.translation_task import translation_pairs, translation_splits
from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

__all__ = ["Batch", "make_batch", "target_sequences", "IGNORE_INDEX", "BucketedBatches",
           "sorted_batches", "TASKS", "SyntheticTask", "DataFileError", "TextPairsData",
           "read_pairs", "Vocabulary", "PAD_ID", "BOS_ID", "EOS_ID", "token_budget_batches", "map_in_batches",
           "SentencePieceTokenizer", "tokenizer_from_manifest", "translation_pairs", "translation_splits",
           "CorpusFiles", "FilterReport", "TokenizedCorpus", "iter_pairs", "load_corpus", "TokenBudgetBatches",
           "fixed_budget_batches", "TranslationData"]
