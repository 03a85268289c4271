"""Text of a record, and its shingles as 32-bit hashes computed in bulk with numpy.

Dedup and decontamination compare DOCUMENT `text`, for EXAMPLE rows the whole conversation (message
contents joined by newlines), and for PREFERENCE rows the prompt and chosen answer. Shingles are
word n-grams from one regex tokenizer (or character n-grams); hashing is deterministic across
processes (no Python `hash`, which is salted per process) and vectorised over a whole batch: tokens
are mapped to batch-local ids with a dict, each distinct token is hashed once (pandas' SipHash with
a fixed key), and n-gram hashes are combined with wrapping uint64 arithmetic over the concatenated
token stream.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import chain
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

WORD = re.compile(r"\w+")
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def record_texts(table: pa.Table) -> list[str]:
    """The text each row is compared by: `text`, an EXAMPLE's message contents joined, or a PREFERENCE's
    prompt and chosen answer (two pairs that differ only in the rejected answer are duplicates)."""
    if "text" in table.column_names:
        return [t or "" for t in table.column("text").to_pylist()]
    if {"prompt", "chosen"} <= set(table.column_names):
        return [conversation_text((prompt or []) + (chosen or []))
                for prompt, chosen in zip(table.column("prompt").to_pylist(), table.column("chosen").to_pylist())]
    if "messages" in table.column_names:
        return [conversation_text(messages) for messages in table.column("messages").to_pylist()]
    raise ValueError(f"table has no 'text', 'messages' or 'prompt'/'chosen' column (columns: {table.column_names})")


def conversation_text(messages: Sequence[dict] | None) -> str:
    return "\n".join(m.get("content") or "" for m in messages or ())


# --- normalisation (exact dedup) --------------------------------------------------------------

NORMALISATIONS = ("nfkc", "lowercase", "whitespace", "punctuation", "digits")
_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")
_DIGITS = re.compile(r"\d")


def normalise(text: str, steps: Iterable[str]) -> str:
    """Apply named normalisations in the canonical order (see NORMALISATIONS)."""
    wanted = set(steps)
    if "nfkc" in wanted:
        text = unicodedata.normalize("NFKC", text)
    if "lowercase" in wanted:
        text = text.lower()
    if "punctuation" in wanted:
        text = _PUNCT.sub(" " if "whitespace" in wanted else "", text)
    if "digits" in wanted:
        text = _DIGITS.sub("0", text)
    if "whitespace" in wanted:
        text = _SPACES.sub(" ", text).strip()
    return text


# --- shingles ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shingling:
    """How a text becomes a set of shingles: word n-grams (`unit="word"`) or character n-grams."""

    ngram: int = 5
    unit: str = "word"  # "word" | "char"
    lowercase: bool = True

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        if self.unit not in ("word", "char"):
            raise ValueError(f"unit must be 'word' or 'char', got {self.unit!r}")


@dataclass
class ShingleBatch:
    """Sorted unique shingle hashes of many texts: `values[offsets[i]:offsets[i+1]]` is text i."""

    values: np.ndarray  # uint32 (uint64 with wide=True)
    offsets: np.ndarray  # int64, len = texts + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_arrow(self) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), pa.array(self.values))

    @classmethod
    def from_arrow(cls, array: pa.ListArray | pa.ChunkedArray) -> "ShingleBatch":
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        offsets = np.asarray(array.offsets, dtype=np.int64)
        values = np.asarray(array.values.to_numpy(zero_copy_only=False), dtype=np.uint32)
        return cls(values[offsets[0]:offsets[-1]], offsets - offsets[0])


def shingle_hashes(texts: Sequence[str], shingling: Shingling, wide: bool = False) -> ShingleBatch:
    """Unique shingle hashes of every text (texts shorter than n give one shingle of all units).

    32-bit hashes (MinHash input, compact to store); `wide` gives 64-bit ones, for lookups in a
    large index where 32-bit collisions would matter.
    """
    units, lengths = (_word_units(texts, shingling.lowercase) if shingling.unit == "word"
                      else _char_units(texts, shingling.lowercase))
    return _ngrams(units, lengths, shingling.ngram, wide)


def _word_units(texts: Sequence[str], lowercase: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hash of every token of every text, concatenated, and the token count per text."""
    tokens = [WORD.findall(t.lower() if lowercase else t) for t in texts]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    vocabulary: dict[str, int] = {}
    ids = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for w in chain.from_iterable(tokens)),
                      dtype=np.int64, count=int(lengths.sum()))
    return token_hashes(list(vocabulary))[ids], lengths


def token_hashes(tokens: list[str]) -> np.ndarray:
    """Deterministic uint64 hash of each string (same value in every process and run)."""
    from pandas.util import hash_array

    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    return hash_array(np.array(tokens, dtype=object), categorize=False)


def _char_units(texts: Sequence[str], lowercase: bool) -> tuple[np.ndarray, np.ndarray]:
    cleaned = [_SPACES.sub(" ", t.lower() if lowercase else t).strip() for t in texts]
    lengths = np.fromiter(map(len, cleaned), dtype=np.int64, count=len(cleaned))
    codes = np.frombuffer("".join(cleaned).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return fmix(codes + _MIX), lengths


def _ngrams(units: np.ndarray, lengths: np.ndarray, n: int, wide: bool) -> ShingleBatch:
    """Combine n consecutive unit hashes that lie inside one text; dedupe and sort per text."""
    count = len(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    doc_of = np.repeat(np.arange(count, dtype=np.int64), lengths)
    total = len(units)
    hashes_parts, docs_parts = [], []
    if total >= n:
        span = total - n + 1
        acc = units[:span].copy()
        for k in range(1, n):
            acc = acc * _MIX + units[k:k + span]
        valid = doc_of[:span] == doc_of[n - 1:]
        hashes_parts.append(acc[valid])
        docs_parts.append(doc_of[:span][valid])
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short):  # a text with fewer than n units is one shingle of all its units
        hashes_parts.append(np.array([_combine(units[starts[i]:starts[i + 1]]) for i in short], dtype=np.uint64))
        docs_parts.append(short)
    if not hashes_parts:
        return ShingleBatch(np.zeros(0, dtype=np.uint64 if wide else np.uint32), np.zeros(count + 1, dtype=np.int64))
    hashes = np.concatenate(hashes_parts)
    docs = np.concatenate(docs_parts)
    folded = fmix(hashes)
    if wide:
        order = np.lexsort((folded, docs))
        docs, folded = docs[order], folded[order]
        fresh = np.ones(len(docs), dtype=bool)
        fresh[1:] = (docs[1:] != docs[:-1]) | (folded[1:] != folded[:-1])
        offsets = np.searchsorted(docs[fresh], np.arange(count + 1), side="left").astype(np.int64)
        return ShingleBatch(folded[fresh], offsets)
    folded = ((folded >> _SHIFT32) ^ folded) & _MASK32
    keys = sorted_unique((docs.astype(np.uint64) << _SHIFT32) | folded)
    key_docs = (keys >> _SHIFT32).astype(np.int64)
    offsets = np.searchsorted(key_docs, np.arange(count + 1), side="left").astype(np.int64)
    return ShingleBatch((keys & _MASK32).astype(np.uint32), offsets)


def sorted_unique(values: np.ndarray, return_counts: bool = False):
    """np.unique by sorting: numpy 2's hash-based unique is ~100x slower on random 64-bit keys."""
    ordered = np.sort(values)
    fresh = np.ones(len(ordered), dtype=bool)
    fresh[1:] = ordered[1:] != ordered[:-1]
    if not return_counts:
        return ordered[fresh]
    starts = np.flatnonzero(fresh)
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def _combine(units: np.ndarray) -> np.uint64:
    acc = units[:1].copy()
    for value in units[1:]:
        acc = acc * _MIX + value
    return acc[0]


_FMIX = {64: (np.uint64, 33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
         32: (np.uint32, 16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)}


def fmix(values: np.ndarray, bits: int = 64) -> np.ndarray:
    """MurmurHash3's finaliser (the one datasketch applies before its affine permutations)."""
    kind, s1, m1, s2, m2, s3 = _FMIX[bits]
    values = values ^ (values >> kind(s1))
    values = values * kind(m1)
    values = values ^ (values >> kind(s2))
    values = values * kind(m2)
    return values ^ (values >> kind(s3))




def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
