"""The run's record: a JSON-lines log (one line per logged step) and a loss-curve PNG."""
from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

from instruct.io.shards import atomic_path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class JsonLog:
    """Append-only JSON lines; on resume, entries past the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, keep_until_step: int):
        self.path = path
        records = read_log(path) if keep_until_step > 0 else []
        self.records = [r for r in records if r["step"] <= keep_until_step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(records: list[dict[str, Any]], path: Path, extra: tuple[str, ...] = ()) -> Path:
    """The loss curve; `extra` keys (RL: reward, kl, response_length) get panels of their own."""
    import matplotlib.pyplot as plt

    figure = loss_figure(records, extra)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return path


def loss_figure(records: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> Any:
    """The figure plot_losses saves; optimizer steps are whole numbers, so are the x ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1 + len(extra), 1, figsize=(7, 4 + 2.5 * len(extra)), squeeze=False)
    for panel in axes[:, 0]:
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis = axes[0, 0]
    for panel, key in zip(axes[1:, 0], extra):
        panel.plot([r["step"] for r in records if key in r], [r[key] for r in records if key in r], linewidth=1)
        panel.set_ylabel(key)
        panel.grid(alpha=0.3)
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if train:
        axis.plot(*zip(*train), label="train loss (per trained token)", linewidth=1)
    if evals:
        axis.plot(*zip(*evals), "o-", label="eval loss")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats/token)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure
