"""The `pii` step: replace personal data and secrets with typed placeholders, counted per type.

Works on DOCUMENT `text` and on every message of EXAMPLE and PREFERENCE rows (TextTransform does
the plumbing); the counts per type land in the manifest, so a run shows how much it scrubbed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from instruct.config import ConfigError
from instruct.pii.detectors import DEFAULT_TYPES, PLACEHOLDERS, TYPES, detectors, find_pii, redact
from instruct.pii.name_judge import THRESHOLD, load_judge
from instruct.pipeline.step import TextTransform


class PiiScrub(TextTransform):
    name = "pii"

    @dataclass
    class Config:
        types: list[str] = field(default_factory=lambda: list(DEFAULT_TYPES))  # + NAME with the `ner` extra
        placeholders: dict[str, str] = field(default_factory=dict)  # type -> replacement, e.g. EMAIL: "[email]"
        phone_validator: Literal["phonenumbers", "pattern"] = "phonenumbers"
        # NAME: spaCy sm, md or both (a PERSON from either) + cues and word lists, or cues only
        name_model: Literal["spacy", "spacy-md", "spacy-sm+md", "cues"] = "spacy"
        # NAME: "lm" lets the embedded model veto found names it does not read as a person's and judge more
        # candidates: fewer products and places scrubbed, more names found (bench/README.md); "none" is
        # faster on text dense with names
        name_judge: Literal["none", "lm"] = "lm"
        name_judge_threshold: float = THRESHOLD  # log p(person) - log p(other kinds) a name must reach

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        for key, names in (("types", self.config.types), ("placeholders", list(self.config.placeholders))):
            unknown = sorted(set(names) - set(TYPES))
            if unknown:
                raise ConfigError(f"{self.name}.{key}: unknown type(s) {', '.join(unknown)}; known: {', '.join(TYPES)}")
        self.placeholders = {**PLACEHOLDERS, **self.config.placeholders}
        uses_judge = self.config.name_judge == "lm" and self.config.name_model != "cues"  # cues: no model finds
        judge = self.config.name_judge_threshold if uses_judge else None
        self.active = detectors(self.config.phone_validator, self.config.types, self.config.name_model, judge)
        if "NAME" in self.config.types and self.config.name_model != "cues":
            from instruct.pii.names import load_models

            load_models(self.config.name_model)  # a missing extra is a one-line error when the recipe loads, not mid-run
            if judge is not None:
                load_judge()

    def scrub(self, text: str) -> tuple[str, Counter]:
        """The text with every PII span replaced, and the spans found per type."""
        spans = find_pii(text, self.active)
        if not spans:
            return text, Counter()
        return redact(text, spans, self.placeholders), Counter(span.type for span in spans)

    transform = scrub  # the TextTransform hook
