"""A found piece of PII: where it is and what type; shared by the regex and the NER detectors."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str
