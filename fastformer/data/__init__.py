"""Training data: built-in synthetic tasks, user text files, a character
vocabulary, length-bucketed batching, parallel corpora as id arrays with
token-budget training batches, and token-budget batches for decoding."""
from fastformer.data.batch import IGNORE_INDEX, Batch, make_batch, target_sequences
from fastformer.data.bucketing import BucketedBatches, sorted_batches
from fastformer.data.corpus import CorpusFiles, FilterReport, TokenizedCorpus, iter_pairs, load_corpus
from fastformer.data.tasks import TASKS, SyntheticTask
from fastformer.data.token_batches import map_in_batches, token_budget_batches
from fastformer.data.textfile import DataFileError, TextPairsData, read_pairs
from fastformer.data.token_budget import TokenBudgetBatches, fixed_budget_batches
from fastformer.data.translation_data import TranslationData
from fastformer.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

__all__ = ["Batch", "make_batch", "target_sequences", "IGNORE_INDEX", "BucketedBatches",
           "sorted_batches", "TASKS", "SyntheticTask", "DataFileError", "TextPairsData",
           "read_pairs", "Vocabulary", "PAD_ID", "BOS_ID", "EOS_ID", "token_budget_batches", "map_in_batches",
           "CorpusFiles", "FilterReport", "TokenizedCorpus", "iter_pairs", "load_corpus", "TokenBudgetBatches",
           "fixed_budget_batches", "TranslationData"]
