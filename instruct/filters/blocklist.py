"""User block lists: `keyword_blocklist` over the text, `url_blocklist` over the URL (WARC/HTML input).

Each step takes named lists, inline or as files (one entry a line, `#` comments), and counts
matches per list in the manifest; the drop reason names the list (`keyword_<list>`, `url_<list>`),
so a run shows which list removed what. Keywords match whole words or phrases, case-insensitively;
URL entries are domains (matching the domain and its subdomains) or URL prefixes (with a scheme).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from instruct.config import ConfigError
from instruct.pipeline.step import Step, StepOutput, merge_meta, replace_column

Lists = dict[str, "list[str] | str"]


def load_lists(where: str, lists: Lists) -> dict[str, list[str]]:
    """name -> entries; a string value is a file of entries. Errors name the list and file."""
    if not lists:
        raise ConfigError(f"{where}.lists: give at least one named list (inline entries or a file)")
    loaded = {}
    for name, value in lists.items():
        if not re.fullmatch(r"[\w.-]+", str(name)):
            raise ConfigError(f"{where}.lists: list name {name!r} must be letters, digits, _ . -")
        if isinstance(value, str):
            try:
                lines = Path(value).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(f"{where}.lists.{name}: cannot read {value} ({error})") from None
            entries = [line.split("#", 1)[0].strip() for line in lines]
        else:
            entries = [str(v).strip() for v in value]
        loaded[name] = [e for e in entries if e]
        if not loaded[name]:
            raise ConfigError(f"{where}.lists.{name}: the list is empty")
    return loaded


class ListStep(Step):
    """Shared plumbing: per-row first matching list -> reason; matches counted per list."""

    prefix = ""

    def matches(self, row: dict) -> Counter:
        raise NotImplementedError

    def apply(self, table: pa.Table) -> StepOutput:
        reasons, metas, counters = [], [], Counter()
        for row in table.select([c for c in ("text", "url_or_path", "meta") if c in table.column_names]).to_pylist():
            found = self.matches(row)
            counters.update({f"{self.prefix}{name}": n for name, n in found.items()})
            blocked = [name for name in self.lists if found[name] >= self.threshold]
            reasons.append(f"{self.prefix}{blocked[0]}" if blocked else None)
            metas.append(merge_meta(row["meta"], {self.name: dict(found)}) if found else row["meta"])
        return StepOutput(replace_column(table, "meta", metas), reasons, counters)


class KeywordBlocklist(ListStep):
    name = "keyword_blocklist"
    prefix = "keyword_"

    @dataclass
    class Config:
        lists: Lists = field(default_factory=dict)  # name -> [word or phrase, ...] or a file of them
        min_matches: int = 1  # occurrences (all entries of a list together) that drop a document

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self.lists = load_lists(self.name, self.config.lists)
        self.threshold = self.config.min_matches
        self.patterns = {name: re.compile(r"(?<!\w)(?:" + "|".join(sorted((re.escape(e.lower()) for e in entries),
                                                                            key=len, reverse=True)) + r")(?!\w)")
                         for name, entries in self.lists.items()}

    def matches(self, row: dict) -> Counter:
        text = (row.get("text") or "").lower()
        return Counter({name: n for name, pattern in self.patterns.items() if (n := len(pattern.findall(text)))})


class UrlBlocklist(ListStep):
    name = "url_blocklist"
    prefix = "url_"

    @dataclass
    class Config:
        lists: Lists = field(default_factory=dict)  # name -> [domain or URL prefix, ...] or a file of them

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self.lists = load_lists(self.name, self.config.lists)
        self.threshold = 1
        self.domains = {name: frozenset(e.lower().removeprefix("www.") for e in entries if "://" not in e)
                        for name, entries in self.lists.items()}
        self.prefixes = {name: tuple(e for e in entries if "://" in e) for name, entries in self.lists.items()}

    def matches(self, row: dict) -> Counter:
        url = row.get("url_or_path") or ""
        host = (urlsplit(url).hostname or "").removeprefix("www.")
        parents = {".".join(host.split(".")[i:]) for i in range(host.count(".") + 1)} if host else set()
        return Counter({name: 1 for name in self.lists
                        if parents & self.domains[name] or url.startswith(self.prefixes[name])})
