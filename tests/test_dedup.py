"""Dedup and decontamination on real stdlib text: signatures, clusters, keep policies, determinism."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from instruct.config import ConfigError
from instruct.dedup import minhash as minhash_module
from instruct.dedup.decontaminate import Decontaminate
from instruct.dedup.exact import ExactDedup
from instruct.dedup.lsh import band_keys, candidate_pairs
from instruct.dedup.minhash import MinHashDedup, minhash_signatures, permutations
from instruct.dedup.text import Shingling, shingle_hashes
from instruct.executor.local_shuffle import decide_table
from instruct.io.readers.base import InputError
from instruct.io.shards import read_shards, read_table
from instruct.schema import documents_table, examples_table
from tests.union_find import UnionFind, components


def table_of(texts: list[str], metas: list[dict] | None = None) -> pa.Table:
    metas = metas or [{} for _ in texts]
    return documents_table({"id": f"d{i}", "text": t, "source": "test", "url_or_path": "", "meta": m}
                           for i, (t, m) in enumerate(zip(texts, metas)))


def edit(text: str, rate: float, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), max(1, int(rate * len(words)))):
        words[i] = "zzword" + str(rng.randint(0, 10**6))
    return " ".join(words)


def word_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(t: str) -> set:
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    return len(grams(a) & grams(b)) / len(grams(a) | grams(b))


def containment(item: str, text: str, n: int = 8) -> float:
    def grams(t: str) -> set:
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    return len(grams(item) & grams(text)) / len(grams(item))


@pytest.fixture(scope="module")
def long_docs(docstrings) -> list[str]:
    return [d for _, d in docstrings if len(d.split()) >= 80][:120]


def test_bulk_signatures_equal_datasketch_updates(long_docs, monkeypatch):
    from datasketch import MinHash

    monkeypatch.setattr(minhash_module, "CHUNK_ROWS", 97)  # blocks cut through documents
    texts = long_docs[:6] + ["", "too short"]
    shingles = shingle_hashes(texts, Shingling(5))
    signatures = minhash_signatures(shingles, permutations(64, 7))
    for i in range(len(texts)):
        reference = MinHash(num_perm=64, seed=7, hashfunc=lambda value: value)
        for value in shingles.of(i).tolist():
            reference.update(value)
        assert np.array_equal(reference.hashvalues, signatures[i])


def test_hash_family_and_banding_are_datasketchs():
    from datasketch import MinHash
    from datasketch.lsh import _optimal_param

    from instruct.dedup.lsh import lsh_params

    assert np.array_equal(MinHash(num_perm=128, seed=5, scheme="affine32").permutations, permutations(128, 5))
    for threshold in (0.5, 0.7, 0.85):
        assert lsh_params(threshold, 128, True) == _optimal_param(threshold, 128, 0.05, 0.95)
        assert lsh_params(threshold, 64, False) == _optimal_param(threshold, 64, 0.5, 0.5)


def test_shingle_hashes_are_the_same_in_another_process(long_docs):
    text = long_docs[0]
    here = shingle_hashes([text], Shingling(5)).values.tolist()
    code = ("import json,sys; from instruct.dedup.text import shingle_hashes, Shingling; "
            "print(json.dumps(shingle_hashes([sys.stdin.read()], Shingling(5)).values.tolist()))")
    other = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert json.loads(other.stdout) == here


def test_char_shingles_and_short_texts():
    batch = shingle_hashes(["abcdef", "abc", "", "abcdefg"], Shingling(ngram=4, unit="char"))
    assert batch.counts().tolist() == [3, 1, 0, 4]
    assert set(batch.of(0)) < set(batch.of(3))


def test_union_find_roots_are_smallest_members():
    sets = UnionFind(6)
    assert sets.union(4, 2) and sets.union(2, 5) and not sets.union(5, 4)
    assert sets.labels().tolist() == [0, 1, 2, 3, 2, 2]
    assert components(5, np.array([[3, 4], [0, 3]])).tolist() == [0, 1, 2, 0, 0]


def test_a_large_bucket_is_connected_without_all_pairs():
    keys = np.zeros((40, 3), dtype=np.uint64)  # 40 identical signatures
    pairs = candidate_pairs(keys)
    assert len(pairs) < 40 * 39 // 2
    assert set(components(40, pairs).tolist()) == {0}


def test_band_keys_differ_only_where_rows_differ():
    sigs = np.arange(24, dtype=np.uint32).reshape(2, 12)
    sigs[1] = sigs[0]
    sigs[1, 5] = 999
    keys = band_keys(sigs, bands=4, rows=3)
    assert (keys[0] == keys[1]).tolist() == [True, False, True, True]


@pytest.mark.parametrize("keep,expected_kept", [("first", "d0"), ("longest", "d2"), ("score", "d1")])
def test_exact_dedup_keep_policies(long_docs, keep, expected_kept):
    base = long_docs[0]
    texts = [base, base.upper(), "  ".join(base.split()) + " ", long_docs[1]]
    texts[2] = texts[2] + " "  # same after whitespace normalisation, longest raw text
    metas = [{"q": {"s": 0.1}}, {"q": {"s": 0.9}}, {}, {}]
    step = ExactDedup(keep=keep, score_key="q.s")
    out = step.apply(table_of(texts, metas))
    kept = [f"d{i}" for i, r in enumerate(out.reasons) if r is None]
    assert kept == sorted([expected_kept, "d3"])
    decision = decide_table(step, table_of(texts, metas))
    clusters = decision.side_tables["clusters"].to_pylist()
    assert {row["id"] for row in clusters} == {"d0", "d1", "d2"}
    assert {row["cluster"] for row in clusters} == {expected_kept} and all(row["size"] == 3 for row in clusters)


def test_exact_dedup_normalisation_is_configurable(long_docs):
    texts = [long_docs[0], long_docs[0].upper()]
    assert ExactDedup(normalise=[]).apply(table_of(texts)).reasons == [None, None]
    assert ExactDedup(normalise=["lowercase"]).apply(table_of(texts)).reasons == [None, "exact_duplicate"]


def test_bad_configs_name_the_problem():
    with pytest.raises(ConfigError, match="score_key"):
        MinHashDedup(keep="score")
    with pytest.raises(ConfigError, match="both bands and rows"):
        MinHashDedup(bands=10)
    with pytest.raises(ConfigError, match="unknown"):
        ExactDedup(normalise=["lowercase", "stemming"])


def test_minhash_removes_edited_copies_and_keeps_unrelated_text(long_docs):
    originals = long_docs[:60]
    copies = [edit(t, 0.03, seed=i) for i, t in enumerate(originals[:20])]
    table = table_of(originals + copies)
    out = MinHashDedup().apply(table)
    dropped = {f"d{i}" for i, r in enumerate(out.reasons) if r == "near_duplicate"}
    copy_ids = {f"d{60 + i}" for i in range(20)}
    assert copy_ids <= dropped  # every copy found (3 % of words edited: Jaccard ~0.85)
    natural = dropped - copy_ids  # anything else dropped must truly be a near-duplicate of a kept text
    step = MinHashDedup()
    clusters = decide_table(step, table).side_tables["clusters"].to_pylist()
    texts = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
    for row in clusters:
        if not row["kept"]:
            assert word_jaccard(texts[row["id"]], texts[row["cluster"]]) >= 0.7
    assert len(natural) <= 2


def test_verification_stops_transitive_chains(long_docs):
    words = re.findall(r"\w+", " ".join(long_docs[:3]))[:300]
    a = " ".join(words)
    b_words = list(words)
    b_words[100:130] = [f"bee{i}" for i in range(30)]
    c_words = list(b_words)
    c_words[200:224] = [f"sea{i}" for i in range(24)]
    b, c = " ".join(b_words), " ".join(c_words)
    assert word_jaccard(a, b) >= 0.7 and word_jaccard(b, c) >= 0.7 and word_jaccard(a, c) < 0.7
    table = table_of([a, b, c])
    assert MinHashDedup(threshold=0.7).apply(table).reasons == [None, "near_duplicate", None]
    assert MinHashDedup(threshold=0.7, verify="none", bands=32, rows=4).apply(table).reasons == \
        [None, "near_duplicate", "near_duplicate"]  # plain LSH + union-find chains c onto a


def test_minhash_on_example_conversations(long_docs):
    conversations = [[{"role": "user", "content": "Explain this."}, {"role": "assistant", "content": t}]
                     for t in long_docs[:5]]
    conversations.append([{"role": "user", "content": "Explain this!"},
                          {"role": "assistant", "content": edit(long_docs[0], 0.02, seed=1)}])
    table = examples_table({"id": f"e{i}", "messages": m, "source": "t", "meta": {}}
                           for i, m in enumerate(conversations))
    assert MinHashDedup().apply(table).reasons == [None] * 5 + ["near_duplicate"]
    assert ExactDedup().apply(table.slice(0, 2)).reasons == [None, None]


@pytest.mark.slow
def test_same_kept_set_and_clusters_for_any_worker_count(long_docs, tmp_path):
    from instruct.io.readers.base import ReadConfig
    from instruct.pipeline.recipe import Recipe, WriteConfig
    from instruct.pipeline.runner import build

    docs = long_docs[:90] + [edit(t, 0.02, seed=i) for i, t in enumerate(long_docs[:30])]
    random.Random(3).shuffle(docs)
    paths = []
    for part in range(3):
        path = tmp_path / f"in{part}.jsonl"
        path.write_text("".join(json.dumps({"id": f"p{part}-{i}", "text": t}) + "\n"
                                for i, t in enumerate(docs[part::3])))
        paths.append(str(path))
    results = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        recipe = Recipe(read=ReadConfig(paths=paths), steps=["exact_dedup", {"minhash_dedup": {"keep": "longest"}}],
                        write=WriteConfig(output=str(out)), workers=workers)
        manifest = build(recipe, show_progress=False)
        kept = sorted(read_shards(out).column("id").to_pylist())
        clusters = read_table(out / "minhash_dedup" / "clusters.arrow").to_pylist()
        results.append((kept, clusters, manifest["global_steps"]["minhash_dedup"]["report"]["dropped"]))
    assert results[0] == results[1]
    assert results[0][2] >= 30


def test_decontaminate_drops_training_text_containing_eval_items(long_docs, tmp_path):
    eval_path = tmp_path / "eval.jsonl"
    questions = [" ".join(t.split()[:40]) for t in long_docs[40:50]]
    eval_path.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "choices": ["yes", "no"]}) + "\n"
                                 for i, q in enumerate(questions)))
    chat_path = tmp_path / "chat.jsonl"
    chat_path.write_text(json.dumps({"messages": [{"role": "user", "content": long_docs[60]}]}) + "\n")
    train = long_docs[:20] + [f"Intro words here. {questions[3]} And the page goes on for a while.",
                              long_docs[60] + " plus a short tail", " ".join(questions[5].split()[:6])]
    step = Decontaminate(eval_sets=[str(eval_path), str(chat_path)], text_fields=[])
    with pytest.raises(InputError, match="question"):
        step.setup()  # eval.jsonl has no text/chat field: the user must name text_fields
    step = Decontaminate(eval_sets=[str(eval_path)], text_fields=["question", "choices"])
    reasons = step.apply(table_of(train)).reasons
    assert reasons[20] == "contaminated" and reasons[22] is None  # 6 words: below every 8-gram
    for text, reason in zip(train[:20], reasons[:20]):  # natural overlaps among stdlib docstrings are real
        assert (reason == "contaminated") == any(containment(q + " yes no", text) >= 0.5 for q in questions)
    chat = Decontaminate(eval_sets=[str(chat_path)])
    assert chat.apply(table_of(train)).reasons[21] == "contaminated"
    decision = decide_table(step, table_of(train))
    assert "q3" in [item["eval_id"] for item in decision.report["hit_items"]]
    assert decision.report["records_dropped"] == reasons.count("contaminated")
    assert {"id": "d20", "eval_id": "q3"}.items() <= next(
        row for row in decision.side_tables["contaminated"].to_pylist() if row["id"] == "d20").items()


def test_decontaminate_names_bad_eval_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine text of an eval item here"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2"):
        Decontaminate(eval_sets=[str(path)]).setup()
