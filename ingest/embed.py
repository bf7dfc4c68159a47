"""Dense embeddings in batches, and the embedder's own tokenizer for chunk sizes and sparse vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lorag.ingest.sparse import SparseEncoder, SparseVector

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder:
    """One method that matters, `embed_batch`; tokens are counted with the same tokenizer the model uses."""

    def __init__(self, model: SentenceTransformer, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.tokenizer = model.tokenizer
        self.dim = int(model.get_embedding_dimension())
        self.max_tokens = int(model.max_seq_length)
        self.sparse = SparseEncoder.for_tokenizer(self.tokenizer)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32, copy=False)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids without special tokens, untruncated (sparse vectors see the whole chunk)."""
        if not texts:
            return []
        # verbose=False: counting a long text is not feeding it to the model, so the length warning is noise.
        return self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def sparse_vectors(self, texts: Sequence[str]) -> list[SparseVector]:
        """Lexical vectors for hybrid search, over this embedder's own vocabulary."""
        return self.sparse.vectors(self.token_ids(texts))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])
