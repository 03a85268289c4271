"""The step contract: a small class with a typed config and one method over an Arrow table.

Every step maps a table to a `StepOutput`: the same rows (possibly with changed columns, e.g.
scores merged into `meta`) and, for filters, one drop reason per row (None = keep). The runner,
not the step, removes dropped rows, counts them per step and reason and writes them to
`rejected/`. Because a step never sees the executor, the same object runs in a process pool,
under Ray, or in a test.

Global steps (dedup, decontamination) need every shard before deciding; they split into
`signatures` (per shard, in workers) and a pass 2 over all signatures on the executor's
shuffle (`reduce` per group, or `decide_by_shuffle`), see `GlobalStep`.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Self

import pyarrow as pa

from instruct.config import from_dict
from instruct.pipeline.grouped import Decision, decide_by_groups
from instruct.provenance import referenced_files
from instruct.schema import MESSAGE_COLUMNS


@dataclass
class StepOutput:
    """What a step returns: all input rows, and why each dropped row was dropped."""

    table: pa.Table
    reasons: list[str | None] | None = None  # None: every row is kept
    counters: Counter = field(default_factory=Counter)  # extra per-step tallies (e.g. PII found)


class Step:
    """Base of all steps. Subclasses set `name`, a nested `Config` dataclass and `apply`."""

    name: ClassVar[str] = ""

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any = None, **params: Any) -> None:
        if config is None:
            config = from_dict(self.Config, params, where=self.name or type(self).__name__)
        elif params:
            config = dataclasses.replace(config, **params)
        self.config = config
        # unique name within a pipeline (e.g. "c4#2"), used for counts and a global step's side folder;
        # a user step without a `name` goes by its class name
        self.label = self.name or type(self).__name__
        self._ready = False

    def setup(self) -> None:
        """Load heavy resources (models, tables). The runner calls it (through `ensure_setup`) once per
        worker process before the step's first table; a step never calls it on itself, so a
        caller outside a build (a test, a bench) calls `ensure_setup` first."""

    def input_files(self) -> list[str]:
        """Files this step reads (templates, models, eval sets): their fingerprints join the resume identity,
        so a changed file redoes the build. By default every parameter that names an existing path."""
        return referenced_files(dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {})

    def ensure_setup(self) -> Self:
        """`setup` once: what the runner (and a caller outside a build) calls before `apply`; returns the step."""
        if not self._ready:
            self.setup()
            self._ready = True
        return self

    def apply(self, table: pa.Table) -> StepOutput:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        # Steps travel to worker processes as config only; each worker runs its own setup().
        return {"config": self.config, "label": self.label}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # re-derive what __init__ computes from the config (and re-validate)
        self.label = state["label"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class DocumentFilter(Step):
    """A filter that judges one text at a time; scores land in meta[name] for re-thresholding.

    Subclasses implement `judge(text) -> (reason or None, scores)`. A filter that also cleans the
    text it keeps (C4 drops lines) implements `clean(text) -> (cleaned text, reason, scores,
    tallies)` instead; kept rows get the cleaned text and the tallies join the manifest counters.
    """

    text_column: ClassVar[str] = "text"

    def judge(self, text: str) -> tuple[str | None, dict[str, Any]]:
        raise NotImplementedError

    def clean(self, text: str) -> tuple[str, str | None, dict[str, Any], Mapping[str, int]]:
        reason, scores = self.judge(text)
        return text, reason, scores, {}

    def apply(self, table: pa.Table) -> StepOutput:
        reasons: list[str | None] = []
        metas: list[str] = []
        texts: list[str | None] = []
        counters: Counter = Counter()
        for text, meta in zip(table.column(self.text_column).to_pylist(), table.column("meta").to_pylist()):
            cleaned, reason, scores, tallies = self.clean(text or "")
            texts.append(text if reason or cleaned == (text or "") else cleaned)
            reasons.append(reason)
            metas.append(merge_meta(meta, {self.name: scores}) if scores else meta)
            counters.update(tallies)
        table = replace_column(table, "meta", metas)
        if texts != table.column(self.text_column).to_pylist():
            table = replace_column(table, self.text_column, texts)
        return StepOutput(table, reasons, counters)


class TextTransform(Step):
    """A step that rewrites text (PII scrubbing, span stripping): DOCUMENT `text`, or every message
    of EXAMPLE and PREFERENCE rows. Subclasses implement `transform(text) -> (text, tallies)`; the
    tallies (e.g. PII found per type) are summed into the step's manifest counters."""

    def transform(self, text: str) -> tuple[str, Mapping[str, int]]:
        raise NotImplementedError

    def apply(self, table: pa.Table) -> StepOutput:
        found: Counter = Counter()

        def rewrite(text: str | None) -> str | None:
            if not text:
                return text
            new, tallies = self.transform(text)
            found.update(tallies)
            return new

        if "text" in table.column_names:
            return StepOutput(replace_column(table, "text", [rewrite(t) for t in table.column("text").to_pylist()]),
                              counters=found)
        columns = [name for name in MESSAGE_COLUMNS if name in table.column_names]
        if not columns:
            raise ValueError(f"{self.name}: table has no 'text' or message column (columns: {table.column_names})")
        for name in columns:  # EXAMPLE messages; PREFERENCE prompt, chosen and rejected
            conversations = [[{"role": m["role"], "content": rewrite(m["content"])} for m in messages or []]
                             if messages is not None else None
                             for messages in table.column(name).to_pylist()]
            table = replace_column(table, name, conversations)
        return StepOutput(table, counters=found)


class GlobalStep(Step):
    """A step that must see the whole dataset before dropping anything.

    Pass 1 (`signatures`, run per shard in workers) returns a small table with an `id` column
    plus whatever the step needs (hashes, MinHash signatures). Pass 2 runs once per build on
    the executor's `pipeline.shuffle.Shuffle` (spilled partitions locally, tasks on Ray), so no
    process gathers every signature. It drops rows by id: rows sharing an id share their fate.
    Deterministic decisions must depend only on shard order and row order, never on timing.

    A step writes pass 2 in one of two ways:

    - `reduce(group) -> Decision`, the hook for most steps (and user steps): `group` is every
      signature row with one value of the signature column `group_by` (every row of the run
      when `group_by` is None), in shard and row order; the Decision names the ids to drop with
      their reasons, counters, a report and side tables (`pipeline.grouped` says how groups
      merge). With `group_by` set, memory is bounded by the largest group.
    - `decide_by_shuffle(shuffle) -> (counters, report)`, for decisions that need more than one
      grouping (dedup clusters): the step writes its dataflow against the `Shuffle` interface,
      per-unit decision files through `pipeline.drops.drop_rows` and side tables in parts
      (`side_part`).

    Side tables written either way are named with their schemas in `side_schemas`; the runner
    joins each into DIR/STEP/NAME.arrow.
    """

    side_schemas: ClassVar[dict[str, pa.Schema]] = {}
    group_by: ClassVar[str | None] = None  # the signature column whose values `reduce` groups by

    def signatures(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def reduce(self, group: pa.Table) -> Decision:
        raise NotImplementedError(f"{type(self).__name__} implements neither reduce nor decide_by_shuffle")

    def decide_by_shuffle(self, shuffle: Any) -> tuple[dict[str, int], dict[str, Any]]:
        """Pass 2 over a `Shuffle`: writes per-unit decision files and side tables through it and
        returns (counters, report). By default: `reduce` per `group_by` group."""
        return decide_by_groups(self, shuffle)

    def apply(self, table: pa.Table) -> StepOutput:
        """Run both passes on one table (tests, single-table use), through the same pass 2 as a build."""
        from instruct.executor.local_shuffle import decide_table  # the in-process shuffle, in a scratch folder

        decision = decide_table(self, table)
        reasons = [decision.drop.get(row_id) for row_id in table.column("id").to_pylist()]
        return StepOutput(table, reasons, decision.counters)


# --- small helpers steps share ----------------------------------------------------------------

def replace_column(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


def merge_meta(meta: str | None, updates: Mapping[str, Any]) -> str:
    """Return the JSON meta string with `updates` merged in (top-level keys replaced)."""
    data = json.loads(meta) if meta else {}
    data.update(updates)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
