"""Keyword and URL/domain block lists: matches counted per list, reasons naming the list."""
from __future__ import annotations

import pytest

from instruct.config import ConfigError
from instruct.pipeline.registry import make_step
from instruct.schema import documents_table

DOCS = [{"id": "a", "text": "Buy cheap pills online now, cheap pills here.", "url_or_path": "https://spam.example.com/x"},
        {"id": "b", "text": "The casino district of Macau is described in this article.",
         "url_or_path": "https://www.news.example.org/macau"},
        {"id": "c", "text": "Pillsbury dough is not a pill.", "url_or_path": "https://shop.example.net/p"},
        {"id": "d", "text": "Plain documentation text.", "url_or_path": "https://docs.example.net/a/b"}]


def test_keywords_match_whole_words_per_list_with_a_threshold(tmp_path):
    words = tmp_path / "gambling.txt"
    words.write_text("# one entry a line\ncasino\nsports betting\n")
    step = make_step("keyword_blocklist", {"lists": {"pharma": ["cheap pills", "pill"], "gambling": str(words)}})
    out = step.apply(documents_table(DOCS))
    assert out.reasons == ["keyword_pharma", "keyword_gambling", "keyword_pharma", None]  # "Pillsbury" is no match
    assert out.counters == {"keyword_pharma": 3, "keyword_gambling": 1}
    strict = make_step("keyword_blocklist", {"lists": {"pharma": ["cheap pills", "pill"]}, "min_matches": 2})
    assert strict.apply(documents_table(DOCS)).reasons == ["keyword_pharma", None, None, None]


def test_urls_match_domains_subdomains_and_prefixes():
    step = make_step("url_blocklist", {"lists": {"spam": ["example.com"],
                                                 "paths": ["https://docs.example.net/a/"]}})
    out = step.apply(documents_table(DOCS))
    assert out.reasons == ["url_spam", None, None, "url_paths"]
    assert out.counters == {"url_spam": 1, "url_paths": 1}


def test_bad_lists_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.txt"):
        make_step("keyword_blocklist", {"lists": {"x": str(tmp_path / "missing.txt")}})
    with pytest.raises(ConfigError, match="empty"):
        make_step("url_blocklist", {"lists": {"x": []}})
    with pytest.raises(ConfigError, match="at least one"):
        make_step("url_blocklist", {})
