"""The web recipe's junk net: a classifier trained here from Python's own docs, cached, safe to load."""
from __future__ import annotations

import inspect
import os
import sysconfig

import click.core
import numpy as np
import pytest

from instruct.config import ConfigError
from instruct.filters.prose import paragraph_words
from instruct.pipeline.registry import make_step
from instruct.quality.builtin import builtin_classifier, model_path
from instruct.quality.classifier import QualityClassifier
from instruct.schema import documents_table

PARAGRAPH = ("The parser reads the whole file before it starts. Each option is checked against the schema, "
             "and an unknown one is reported with its line number. Nothing is written until every check passed.")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSTRUCT_CACHE", str(tmp_path_factory.mktemp("cache")))
        builtin_classifier("web")  # trains once (seconds) into this cache
        yield model_path("web")


def real_pages() -> dict[str, str]:
    """Text none of the training material contains: a third-party library's docs, and junk of
    three kinds built from this machine's build settings and the os module's API."""
    docs = [inspect.getdoc(obj) or "" for obj in (click.core.Context, click.core.Command, click.core.Option)]
    settings = sorted((k, v) for k, v in sysconfig.get_config_vars().items() if isinstance(v, str) and v)[:25]
    functions = [(name, inspect.getdoc(getattr(os, name)).splitlines()[0]) for name in sorted(dir(os))
                 if callable(getattr(os, name)) and not name.startswith("_") and inspect.getdoc(getattr(os, name))]
    return {
        "good": "\n\n".join(doc[:1500] for doc in docs),
        "chrome": ("Skip to content\n"
                   "Products | Pricing | Docs | Blog | Log in\n"
                   "Start your free trial\n"
                   "Trusted by 4,000 teams worldwide\n"
                   "Follow us on Mastodon\n"
                   "Cookie settings\n"
                   "Privacy notice\n"
                   "Status page\n"
                   "Talk to sales\n"
                   "Newsletter: get product updates\n"
                   "© 2024 Acme Cloud Inc.\n"
                   "Back to top"),
        "records": "\n".join(f"{key} = {value[:60]}" for key, value in settings),
        "index_table": "\n".join(f"os.{name} | {summary}" for name, summary in functions[40:65]),
    }


def test_built_in_model_is_trained_once_and_cached_as_a_pickle_free_file(cache):
    assert cache.is_file() and cache.suffix == ".npz"
    mtime = cache.stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSTRUCT_CACHE", str(cache.parent.parent))
        again = builtin_classifier("web")
    assert cache.stat().st_mtime_ns == mtime  # loaded, not retrained
    with np.load(cache, allow_pickle=False) as data:  # no object arrays: loading runs no code
        assert set(data.files) == {"header", "coef"}
    texts = list(real_pages().values())
    np.testing.assert_array_equal(QualityClassifier.load(cache).scores(texts), again.scores(texts))


def test_real_docs_score_above_and_unseen_junk_below_the_recipe_threshold(cache):
    classifier = QualityClassifier.load(cache)
    pages = real_pages()
    scores = dict(zip(pages, classifier.scores(list(pages.values())).tolist()))
    assert scores["good"] >= 0.5, scores
    assert all(scores[kind] < 0.5 for kind in ("chrome", "records", "index_table")), scores


def test_paragraph_words_counts_multi_sentence_lines_only():
    assert paragraph_words(PARAGRAPH) == len(PARAGRAPH.split())
    assert paragraph_words(PARAGRAPH.replace(". ", ".\n")) == 0  # one sentence per line: a list, not prose
    assert paragraph_words("Short one. Another one.") == 0  # under 15 words
    assert paragraph_words("a long line " * 10) == 0  # no sentence end at all


def test_step_keeps_a_page_with_paragraphs_whatever_its_score(cache):
    pages = real_pages()
    framed = pages["chrome"] + "\n" + PARAGRAPH + "\n" + PARAGRAPH
    table = documents_table([{"id": "chrome", "text": pages["chrome"]}, {"id": "framed", "text": framed}])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSTRUCT_CACHE", str(cache.parent.parent))
        for guard, expected in ((30, [True, False]), (None, [True, True]), (100, [True, True])):
            step = make_step("quality_classifier", {"model": "builtin:web", "threshold": 1.01,
                                                    "keep_paragraph_words": guard})
            step.ensure_setup()
            out = step.apply(table)
            assert [reason == "low_quality" for reason in out.reasons] == expected, guard


def test_unknown_built_in_model_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"unknown built-in classifier builtin:nope; known: builtin:web"):
        builtin_classifier("nope")
