"""The compiled Transformer: `fastformer.Transformer`."""
from fastformer.model.transformer import Transformer

__all__ = ["Transformer"]
