"""User steps, named in recipes as `build_steps:NAME` (PYTHONPATH=tests).

`SlowStep` logs the first id of every table it sees, so a test can tell which units a run redid;
`TorchThreads` logs the torch threads a worker runs with; `FailOn` fails on one table; `RareTopics`
is a global step written as a user would.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from instruct.pipeline.step import Decision, GlobalStep, Step, StepOutput


class SlowStep(Step):
    @dataclass
    class Config:
        seconds: float = 0.1  # sleep per table
        log: str = ""  # file to append "pid first-id" lines to

    def input_files(self) -> list[str]:
        return []  # `log` is written, not read: it must not change the run's identity

    def apply(self, table: pa.Table) -> StepOutput:
        time.sleep(self.config.seconds)
        if self.config.log:
            with open(self.config.log, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()} {table.column('id')[0].as_py()}\n")
        return StepOutput(table)


class TorchThreads(Step):
    """Logs "pid threads" for every table: how many intra-op threads torch runs with in the worker."""

    @dataclass
    class Config:
        log: str = ""

    def input_files(self) -> list[str]:
        return []

    def apply(self, table: pa.Table) -> StepOutput:
        import torch

        with open(self.config.log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {torch.get_num_threads()}\n")
        return StepOutput(table)


class FailOn(Step):
    """Raises on a table read from a given file: a step's bug, as a build reports it."""

    @dataclass
    class Config:
        file: str = ""  # a name in url_or_path (file:line)

    def apply(self, table: pa.Table) -> StepOutput:
        if any(self.config.file in where for where in table.column("url_or_path").to_pylist()):
            raise ZeroDivisionError(f"cannot judge {self.config.file}")
        return StepOutput(table)


class RareTopics(GlobalStep):
    """A user's global step with only a per-unit map and a reduce: drop the documents of topics
    (meta `topic`) with fewer than `min_docs` documents, whichever units they are spread over."""

    group_by = "topic"

    @dataclass
    class Config:
        min_docs: int = 3

    def signatures(self, table: pa.Table) -> pa.Table:
        topics = [json.loads(meta or "{}").get("topic", "") for meta in table.column("meta").to_pylist()]
        return pa.table({"id": table.column("id"), "topic": pa.array(topics, pa.string())})

    def reduce(self, group: pa.Table) -> Decision:
        topic = group.column("topic")[0].as_py()
        if group.num_rows >= self.config.min_docs:
            return Decision(drop={}, counters=Counter(kept_topics=1))
        return Decision(drop={row_id: "rare_topic" for row_id in group.column("id").to_pylist()},
                        counters=Counter(rare_topics=1), report={"rare": {topic: group.num_rows}})
