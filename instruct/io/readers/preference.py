"""Preference JSONL (.gz/.zst) -> PREFERENCE rows: TRL prompt/chosen/rejected (plain or conversational),
HH-RLHF full-text pairs, UltraFeedback rated completions and K-way rankings, detected per record
(`instruct.preferences`). A record that fits none is a `not_a_preference` reject naming file:line;
UltraFeedback candidate pairs left unpaired (ties, margins at or under `min_margin`) are counted in the
manifest's read counts as `preference_<reason>`.

    read: {format: preference, paths: ["data/prefs/*.jsonl"], options: {min_margin: 1.0}}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from instruct.io.readers.base import ReadBatch, Reject, WorkUnit
from instruct.io.readers.jsonl import JsonlReader
from instruct.preferences import PairStats, to_preferences
from instruct.schema import PREFERENCE_SCHEMA, SchemaError


@dataclass
class PreferenceOptions:
    min_margin: float = 0.0  # UltraFeedback ratings: a pair needs a larger score difference


class PreferenceReader(JsonlReader):
    format = "preference"
    default_source = "preference"
    Options = PreferenceOptions

    @property
    def schema(self) -> pa.Schema:
        return PREFERENCE_SCHEMA

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        for path in unit.paths:
            yield from self.batches(self._pairs(path))

    def _pairs(self, path: str) -> Iterator[dict | Reject]:
        for item in self.objects(path):
            if isinstance(item, Reject):
                yield item
                continue
            where, decoded, record = item
            stats = PairStats()
            try:
                pairs = to_preferences(record, self.config.source or None, self.options.min_margin, stats)
            except (SchemaError, AttributeError, TypeError, KeyError) as error:
                yield self.reject(where, "not_a_preference", str(error), decoded)
                continue
            for reason, count in stats.skipped.items():
                for _ in range(count):  # unpaired candidates are counted, not silently lost
                    yield Reject(where, f"preference_{reason}", "candidate pair not made")
            yield from pairs
