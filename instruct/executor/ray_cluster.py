"""Joining a Ray cluster (or starting a local one), shared by the Ray executor and its deciders.

Ray is an optional extra, imported only here and only when a recipe says `executor: ray`.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from instruct.config import ConfigError


def import_ray() -> Any:
    """Ray is an optional extra; say how to get it instead of a bare ImportError."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("the ray executor needs Ray Data: pip install 'instruct[ray]' "
                          "(or pip install 'ray[data]')") from None
    return ray


def connect(workers: int) -> Any:
    """Join the cluster at RAY_ADDRESS (or the one already joined), else start a local one."""
    ray = import_ray()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # "local": a fresh cluster even when `ray start` left one running on this machine
        options: dict[str, Any] = {"address": address} if address else {"address": "local",
                                                                           "num_cpus": max(1, workers)}
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False, **options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the executor shows its own per-stage bar
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    return ray


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
