"""A deliberately slow step, named in recipes as `build_steps:SlowStep` (PYTHONPATH=tests).

It logs the first id of every table it sees, so a test can tell which units a run redid.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pyarrow as pa

from instruct.pipeline.step import Step, StepOutput


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
