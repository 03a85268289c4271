"""ROUGE-L equals rouge_score's, and the prefix-filter index finds exactly what the all-pairs loop finds."""
from __future__ import annotations

import random

import pytest

from instruct.synth.rouge import RougeIndex, lcs_length, rouge_l_tokens, tokenize


def _lcs_dp(a: list, b: list) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@pytest.fixture(scope="module")
def sentences(docstrings) -> list[str]:
    """Real sentences plus edited near-duplicates, so both sides of the 0.7 threshold occur."""
    rng = random.Random(7)
    found = []
    for _, text in docstrings:
        for sentence in text.replace("\n", " ").split(". "):
            if 3 < len(sentence.split()) < 30:
                found.append(sentence)
    out = []
    for sentence in found[:300]:
        out.append(sentence)
        tokens = sentence.split()
        for _ in range(rng.randint(0, 2)):
            tokens[rng.randrange(len(tokens))] = rng.choice(["the", "value", "Ω", "x"])
        out.append(" ".join(tokens))
    rng.shuffle(out)
    return out


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(1)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_tokenize_and_f_equal_rouge_score(sentences):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(3)
    for _ in range(400):
        a, b = rng.choice(sentences), rng.choice(sentences)
        assert tokenize(a) == scorer._tokenizer.tokenize(a)
        assert rouge_l_tokens(tokenize(a), tokenize(b)) == scorer.score(a, b)["rougeL"].fmeasure  # bit-identical


def test_index_decisions_equal_the_all_pairs_loop(sentences):
    index = RougeIndex(0.7)
    kept: list[list[str]] = []
    rejected = 0
    for sentence in sentences:
        tokens = tokenize(sentence)
        brute = max((rouge_l_tokens(tokens, other) for other in kept), default=0.0)
        best, _ = index.max_similarity(sentence)
        assert (best > 0.7) == (brute > 0.7)
        if brute > 0.7:
            assert best == brute
            rejected += 1
        else:
            index.add(sentence)
            kept.append(tokens)
    assert rejected > 25 and len(kept) > 250  # both outcomes were exercised
    assert index.comparisons < len(sentences) * len(kept) / 10  # and far fewer than all pairs


def test_threshold_must_be_positive():
    with pytest.raises(ValueError):
        RougeIndex(0.0)
