"""Every path of a build's output folder, in one place (executors, resume and the manifest share it).

    DIR/shards/UNIT-NNNN.arrow          kept records of the last stage
    DIR/rejected/sS-UNIT-NNNN.arrow     records dropped in stage S, with `step` and `reason`
    DIR/rejected/read-UNIT.arrow        records the reader could not read
    DIR/STEP/NAME.arrow or NAME/        side tables of a global step (e.g. dedup clusters)
    DIR/manifest.json, DIR/report.html  summaries
    DIR/.lock                           held by the running build
    DIR/.work/recipe.json               the run identity; a different one starts the folder over
    DIR/.work/stageS/                   stage S's intermediates (sS-UNIT-NNNN.arrow), per-unit
                                        stats (UNIT.stats.json, written last: the unit is done) and
                                        global-step signatures (UNIT.sig.arrow)
    DIR/.work/decisionS/UNIT.arrow      ids of UNIT the global step closing stage S dropped
    DIR/.work/decisionS.json            that decision's counters and report, written last: done
"""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

STATS_SUFFIX = ".stats.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one output folder: a frozen value that travels to workers with the units."""

    output: Path
    work: Path = field(init=False)  # resume state: DIR/.work
    shards: Path = field(init=False)
    rejected: Path = field(init=False)
    identity: Path = field(init=False)  # DIR/.work/recipe.json
    lock: Path = field(init=False)
    manifest: Path = field(init=False)
    report: Path = field(init=False)

    def __post_init__(self) -> None:
        output = Path(self.output)
        paths = {"output": output, "work": output / ".work", "shards": output / "shards",
                 "rejected": output / "rejected", "identity": output / ".work" / "recipe.json",
                 "lock": output / ".lock", "manifest": output / "manifest.json", "report": output / "report.html"}
        for name, path in paths.items():
            object.__setattr__(self, name, path)

    def stage_dir(self, stage: int) -> Path:
        return self.work / f"stage{stage}"

    def stats(self, stage: int, unit_key: str) -> Path:
        return self.stage_dir(stage) / f"{unit_key}{STATS_SUFFIX}"

    def signatures(self, stage: int, unit_key: str) -> Path:
        return self.stage_dir(stage) / f"{unit_key}.sig.arrow"

    def decision_dir(self, stage: int) -> Path:
        return self.work / f"decision{stage}"

    def decision(self, stage: int, unit_key: str) -> Path:
        """Decisions are stored per unit, so no process ever holds the whole drop set."""
        return self.decision_dir(stage) / f"{unit_key}.arrow"

    def decision_done(self, stage: int) -> Path:
        """Written last by a global step's second pass: its presence marks the decision done."""
        return self.work / f"decision{stage}.json"

    def side_dir(self, step_label: str) -> Path:
        return self.output / step_label

    def read_rejects(self, unit_key: str) -> Path:
        return self.rejected / f"read-{unit_key}.arrow"

    def kept_prefix(self, stage: int, unit_key: str, final: bool) -> tuple[Path, str]:
        """(folder, shard prefix) of the rows a unit keeps in a stage: output shards in the last one."""
        return (self.shards, unit_key) if final else (self.stage_dir(stage), f"s{stage}-{unit_key}")

    def rejected_prefix(self, stage: int, unit_key: str) -> tuple[Path, str]:
        return self.rejected, f"s{stage}-{unit_key}"


def unit_shards(folder: Path, prefix: str) -> list[Path]:
    """The numbered shards `PREFIX-NNNN.arrow` of one unit, exactly (a longer unit key is another unit)."""
    pattern = re.compile(re.escape(prefix) + r"-\d{4}\.arrow")
    return sorted(p for p in folder.glob(f"{glob.escape(prefix)}-*.arrow") if pattern.fullmatch(p.name))
