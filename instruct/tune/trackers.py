"""`train.report_to`: the step records also go to TensorBoard, MLflow or Trackio, all offline, under DIR.

The JSON log and loss plot stay the record of the run; a tracker is a view for people who
already use one. Each is an optional extra, imported only when asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from instruct.config import ConfigError

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio"}


class Tracker(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TensorBoard:
    """Event files in DIR/tensorboard (`tensorboard --logdir DIR/tensorboard`)."""

    def __init__(self, output: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(output / "tensorboard"))
        self.writer.add_text("tune_config", f"```\n{config}\n```")

    def log(self, record: dict[str, Any]) -> None:
        for key, value in _scalars(record).items():
            self.writer.add_scalar(f"train/{key}", value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflow:
    """A local file store in DIR/mlruns (`mlflow ui --backend-store-uri DIR/mlruns`)."""

    def __init__(self, output: Path, config: dict[str, Any]):
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri((output / "mlruns").resolve().as_uri())
        self.run = mlflow.start_run(run_name=output.name)
        mlflow.log_dict(config, "tune_config.json")

    def log(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_scalars(record), step=record["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class Trackio:
    """Trackio's local store (`trackio show`), project `instruct`, run named after DIR."""

    def __init__(self, output: Path, config: dict[str, Any]):
        import trackio

        self.trackio = trackio
        trackio.init(project="instruct", name=output.name, config=config)

    def log(self, record: dict[str, Any]) -> None:
        self.trackio.log(_scalars(record), step=record["step"])

    def close(self) -> None:
        self.trackio.finish()


TRACKERS = {"tensorboard": TensorBoard, "mlflow": MLflow, "trackio": Trackio}


def open_trackers(names: list[str], output: Path, config: dict[str, Any]) -> list[Tracker]:
    """One tracker per name; a missing package is a one-line error naming the extra to install."""
    trackers = []
    for name in dict.fromkeys(names):
        try:
            trackers.append(TRACKERS[name](output, config))
        except ImportError as error:
            raise ConfigError(f"train.report_to: {name} needs the {EXTRAS[name]} package "
                              f"(pip install 'instruct[{EXTRAS[name]}]'): {error}") from None
    return trackers


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float)) and v is not None}
