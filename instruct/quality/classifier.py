"""A linear text-quality classifier: train, score, save and load a versioned model file.

The file is a numpy `.npz` (no pickle, safe to load from anywhere) holding the weights and a
JSON header: format name and version, feature kind and settings, threshold, held-out metrics
and training details. Scores are P(good) from float32 weights, identical before and after a
save/load round trip.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from instruct.config import ConfigError, from_dict
from instruct.io.shards import atomic_path
from instruct.quality.features import EmbeddingConfig, HashedConfig, HashedFeatures, MiniLMFeatures
from instruct.quality.metrics import heldout_metrics

FORMAT = "instruct-quality-classifier"
VERSION = 1
Kind = Literal["hashed", "embedding"]


class ModelFileError(ConfigError):
    """A model file that is missing, not ours, or from an unknown format version."""


@dataclass
class ClassifierTrainConfig:
    kind: Kind = "hashed"
    hashed: HashedConfig = dataclasses.field(default_factory=HashedConfig)
    embedding: EmbeddingConfig = dataclasses.field(default_factory=EmbeddingConfig)
    holdout: float = 0.2  # share of records kept out of training for the metrics
    c: float = 4.0  # inverse L2 strength of the logistic regression
    threshold: float = 0.5  # default decision threshold stored in the model (steps may override)
    seed: int = 0


def make_features(kind: str, settings: dict[str, Any]):
    if kind == "hashed":
        return HashedFeatures(from_dict(HashedConfig, settings, "hashed"))
    if kind == "embedding":
        return MiniLMFeatures(from_dict(EmbeddingConfig, settings, "embedding"))
    raise ModelFileError(f"unknown classifier kind {kind!r}")


class QualityClassifier:
    """Features + logistic weights; `scores(texts)` is P(good) per text."""

    def __init__(self, kind: str, settings: dict[str, Any], coef: np.ndarray, intercept: float,
                 threshold: float = 0.5, info: dict[str, Any] | None = None, features: Any = None) -> None:
        self.kind, self.settings = kind, settings
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.float32(intercept)
        self.threshold = threshold
        self.info = info or {}
        self.features = features if features is not None else make_features(kind, settings)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        logits = np.asarray(self.features.transform(texts) @ self.coef, dtype=np.float32) + self.intercept
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "settings": self.settings,
                "intercept": float(self.intercept), "threshold": self.threshold, **self.info}

    def save(self, path: str | Path) -> Path:
        """Write the model atomically; the path is used exactly as given (np.savez adds no suffix)."""
        buffer = io.BytesIO()
        header = np.frombuffer(json.dumps(self.header(), sort_keys=True).encode("utf-8"), dtype=np.uint8)
        np.savez_compressed(buffer, header=header, coef=self.coef)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "QualityClassifier":
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(data["header"].tobytes().decode("utf-8"))
                coef = data["coef"]
        except (ValueError, KeyError, OSError) as error:
            raise ModelFileError(f"{path}: not a quality classifier file ({error})") from None
        if header.get("format") != FORMAT:
            raise ModelFileError(f"{path}: format {header.get('format')!r} is not {FORMAT!r}")
        if header.get("version") != VERSION:
            raise ModelFileError(f"{path}: model format version {header.get('version')} is not supported "
                                 f"(this instruct reads version {VERSION}); retrain with `instruct classify train`")
        info = {k: v for k, v in header.items()
                if k not in ("format", "version", "kind", "settings", "intercept", "threshold")}
        return cls(header["kind"], header["settings"], coef, header["intercept"], header["threshold"], info)


@dataclass
class ClassifierTrainResult:
    classifier: QualityClassifier
    metrics: dict[str, Any]
    heldout_labels: np.ndarray
    heldout_scores: np.ndarray


def split_holdout(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/held-out indices; both classes must appear in both parts."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        raise ConfigError(f"need at least 2 good and 2 bad records to train; got {counts[1]} good, {counts[0]} bad")
    indices = np.arange(len(labels))
    if holdout <= 0:
        return indices, indices[:0]
    return train_test_split(indices, test_size=holdout, random_state=seed, stratify=labels)


def train_classifier(texts: Sequence[str], labels: Sequence[int], config: ClassifierTrainConfig) -> ClassifierTrainResult:
    """Fit on a stratified split, measure on the held-out part, return the classifier and metrics."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=int)
    settings = dataclasses.asdict(config.hashed if config.kind == "hashed" else config.embedding)
    features = make_features(config.kind, settings)
    train_idx, held_idx = split_holdout(labels, config.holdout, config.seed)
    started = time.perf_counter()
    matrix = features.transform([texts[i] for i in train_idx])
    model = LogisticRegression(C=config.c, solver="liblinear", max_iter=2000, class_weight="balanced",
                               random_state=config.seed)
    model.fit(matrix, labels[train_idx])
    seconds = time.perf_counter() - started
    info = {"trained": {"records": int(len(train_idx)), "good": int(labels[train_idx].sum()),
                        "heldout": int(len(held_idx)), "seconds": round(seconds, 2), "c": config.c,
                        "seed": config.seed}}
    classifier = QualityClassifier(config.kind, settings, model.coef_[0], float(model.intercept_[0]),
                                   config.threshold, info, features)
    held_scores = classifier.scores([texts[i] for i in held_idx])
    metrics = heldout_metrics(labels[held_idx], held_scores, config.threshold) if len(held_idx) else {}
    classifier.info["metrics"] = metrics
    return ClassifierTrainResult(classifier, metrics, labels[held_idx], held_scores)
