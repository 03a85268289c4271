"""Held-out metrics of a binary quality classifier and its precision-recall curve image."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from instruct.io.shards import atomic_path


def heldout_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision/recall/F1/accuracy of the positive (good) class at `threshold`, plus ROC AUC and AP."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average="binary",
                                                               zero_division=0)
    both_classes = len(np.unique(labels)) == 2
    return {
        "threshold": float(threshold),
        "n": int(len(labels)),
        "positives": int(labels.sum()),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "auc": float(roc_auc_score(labels, scores)) if both_classes else None,
        "average_precision": float(average_precision_score(labels, scores)) if both_classes else None,
    }


def write_pr_curve(labels: np.ndarray, scores: np.ndarray, path: str | Path, title: str) -> Path:
    """Save the precision-recall curve of the good class as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(np.asarray(labels, dtype=int), scores)
    figure, axes = plt.subplots(figsize=(5, 4), dpi=100)
    axes.plot(recall, precision, drawstyle="steps-post")
    axes.set(xlabel="recall (good documents)", ylabel="precision", title=title, xlim=(0, 1.01), ylim=(0, 1.01))
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)
