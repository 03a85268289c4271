"""The `template` step: raw labeled rows in, EXAMPLE conversations out.

    steps:
      - template: {templates: sentiment, k: 2, seed: 0, fewshot: {path: data/train.csv, k: 3}}

Each row gets up to `k` templates, tried in a seeded per-row order until `k` of them yield a
target, so output depends only on (seed, row id), never on worker count or batch order. A row
that yields nothing is dropped with its reason (unlabeled, no_target, empty_target) and kept
whole in `rejected/`; the runner counts it. Input is a raw table from the `dataset` reader, or
DOCUMENT rows whose `meta` holds the fields (the jsonl reader's layout).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from instruct.config import ConfigError
from instruct.pipeline.step import Step, StepOutput
from instruct.schema import DOCUMENT_SCHEMA, EXAMPLE_SCHEMA, MESSAGE_TYPE
from instruct.templates.fewshot import Demonstrations, FewshotConfig
from instruct.templates.loader import load_templates
from instruct.templates.render import UNLABELED, Template, stable_seed


@dataclass
class TemplateConfig:
    templates: list[str]  # template files, folders or library names (see `instruct templates list`)
    names: list[str] = field(default_factory=list)  # template names or ids to use; empty: all
    k: int = 1  # templates per row (seeded sample); 0: every template
    seed: int = 0
    inverted: bool = False  # also use inverted (answer -> question) templates
    original_task_only: bool = False  # only templates whose metadata says original_task
    system: str | None = None  # system prompt for every example (else the template's own, if any)
    fewshot: FewshotConfig | None = None
    keep_fields: list[str] = field(default_factory=list)  # input fields copied into meta.fields
    columns: dict[str, str] = field(default_factory=dict)  # input column -> template field, e.g. {sentence: text}
    label_map: dict[Any, int] = field(default_factory=dict)  # raw label -> index into answer_choices ({pos: 1})

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.label_map.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}
        if bad:
            raise ConfigError(f"template.label_map: values must be answer_choices indexes (0, 1, ...), got {bad}")


class TemplateStep(Step):
    name = "template"
    Config = TemplateConfig

    def __init__(self, config: Any = None, **params: Any) -> None:
        super().__init__(config, **params)
        select_templates(self.config)  # a bad path, name or template fails when the recipe loads, not in a worker

    def setup(self) -> None:
        self.pool = select_templates(self.config)
        self.demos = Demonstrations(self.config.fewshot) if self.config.fewshot else None
        self._static_meta = {t.id: _static_meta(t) for t in self.pool}

    def apply(self, table: pa.Table) -> StepOutput:
        rows, locations = _rows(table)
        out = ExampleColumns()
        reasons: list[str | None] = []
        counters: Counter = Counter()
        for row, location in zip(rows, locations):
            made, reason = self._row_examples(self._prepare(row), location, counters, out)
            if made:
                reasons.extend([None] * made)
            else:  # the input row travels whole to rejected/, with the reason
                out.add(str(row["id"]), [], self.pool[0].dataset,
                        json.dumps({"row": row, "where": str(location)}, ensure_ascii=False, default=str))
                reasons.append(reason)
        return StepOutput(out.table(), reasons, counters)

    def _prepare(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as the templates read it: columns renamed, raw labels mapped to answer_choices indexes."""
        if self.config.columns:
            row = {self.config.columns.get(key, key): value for key, value in row.items()}
        if self.config.label_map and "label" in row:
            label = row["label"]
            mapped = self.config.label_map.get(label, self.config.label_map.get(str(label)))
            row = {**row, "label": label if mapped is None else mapped}
        return row

    def _row_examples(self, row: dict[str, Any], location: _Location, counters: Counter,
                      out: "ExampleColumns") -> tuple[int, str | None]:
        row_id = str(row["id"])
        made, first_reason = 0, None
        for template in self._order(row_id):
            result = template.render(row, seed=self.config.seed, where=location)
            if isinstance(result, str):
                if result == UNLABELED:
                    return made, result  # no template can use a row without its label
                first_reason = first_reason or result
                counters[f"skipped/{template.name}/{result}"] += 1
                continue
            self._add_example(out, template, row, row_id, result, location)
            counters[f"template/{template.name}"] += 1
            made += 1
            if made == self.config.k:
                break
        return made, first_reason

    def _order(self, row_id: str) -> list[Template]:
        if not self.config.k or self.config.k >= len(self.pool):
            return self.pool
        return [self.pool[i] for i in permutation(stable_seed(self.config.seed, row_id), len(self.pool))]

    def _add_example(self, out: "ExampleColumns", template: Template, row: dict[str, Any], row_id: str,
                     result: tuple[str, str], location: _Location) -> None:
        prompt, target = result
        messages: list[tuple[str, str]] = []
        system = self.config.system if self.config.system is not None else template.system
        if system:
            messages.append(("system", system))
        meta: dict[str, Any] = {"input_id": row_id}
        if self.demos is not None:
            demos = self.demos.draw(template, row_id, self.config.seed, prompt)
            meta["fewshot_ids"] = [demo_id for demo_id, _ in demos]
            if self.config.fewshot.style == "turns":
                for _, (demo_prompt, demo_target) in demos:
                    messages += [("user", demo_prompt), ("assistant", demo_target)]
            else:
                prompt = self.config.fewshot.separator.join([f"{p}\n{t}" for _, (p, t) in demos] + [prompt])
        messages += [("user", prompt), ("assistant", target)]
        if not template.metadata.inverted and template.fixed_answer_choices is None:
            choices = template.answer_choices(row, seed=self.config.seed, where=location)
            if choices is not None:
                meta[_choices_key(template)] = choices
        if self.config.keep_fields:
            meta["fields"] = {name: row.get(name) for name in self.config.keep_fields}
        # the per-template part of meta was serialised once in setup(); only the row's part is encoded here
        meta_json = self._static_meta[template.id] + json.dumps(meta, ensure_ascii=False, default=str)[1:]
        out.add(f"{row_id}#{template.name}", messages, f"{template.dataset}/{template.name}", meta_json)


class ExampleColumns:
    """EXAMPLE rows gathered as flat columns, so Arrow builds whole string arrays instead of per-row dicts."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.metas: list[str] = []
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.offsets: list[int] = [0]

    def add(self, example_id: str, messages: list[tuple[str, str]], source: str, meta_json: str) -> None:
        self.ids.append(example_id)
        self.sources.append(source)
        self.metas.append(meta_json)
        for role, content in messages:
            self.roles.append(role)
            self.contents.append(content)
        self.offsets.append(len(self.roles))

    def table(self) -> pa.Table:
        messages = pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            pa.StructArray.from_arrays([pa.array(self.roles, pa.string()), pa.array(self.contents, pa.string())],
                                       fields=list(MESSAGE_TYPE)))
        return pa.Table.from_arrays([pa.array(self.ids, pa.string()), messages, pa.array(self.sources, pa.string()),
                                     pa.array(self.metas, pa.string())], schema=EXAMPLE_SCHEMA)


def _static_meta(template: Template) -> str:
    """The meta every example of `template` shares, as JSON without its closing brace (followed by ', ')."""
    meta: dict[str, Any] = {"dataset": template.dataset, "template": template.name, "template_id": template.id}
    if template.metadata.original_task is not None:
        meta["original_task"] = template.metadata.original_task
    if template.answer_pattern:  # a CoT target is rationale + answer: scored by extraction, not by ranking choices
        meta["answer_pattern"] = template.answer_pattern
    if template.metadata.inverted:
        meta["inverted"] = True  # its answer choices describe the prompt, not the target
    elif template.fixed_answer_choices is not None:
        meta[_choices_key(template)] = template.fixed_answer_choices
    return json.dumps(meta, ensure_ascii=False)[:-1] + ", "


def _choices_key(template: Template) -> str:
    """`choices` make `instruct eval` rank them against the target; a CoT target is not one of them."""
    return "answer_options" if template.answer_pattern else "choices"


def permutation(seed: int, n: int) -> list[int]:
    """A seeded Fisher-Yates shuffle of range(n) on a 64-bit LCG: far cheaper than seeding random.Random per row."""
    order, state = list(range(n)), seed
    for i in range(n - 1, 0, -1):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        j = (state >> 33) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def select_templates(config: TemplateConfig) -> list[Template]:
    """The template pool a step samples from, in file order; unknown names are an error."""
    loaded = [t for path in config.templates for t in load_templates(path)]
    if config.names:
        by_key = {key: t for t in loaded for key in (t.name, t.id)}
        missing = [n for n in config.names if n not in by_key]
        if missing:
            raise ConfigError(f"template: no template named {', '.join(map(repr, missing))}; "
                              f"available: {', '.join(t.name for t in loaded)}")
        pool = list({id(t): t for t in (by_key[n] for n in config.names)}.values())
    else:
        pool = [t for t in loaded if config.inverted or not t.metadata.inverted]
    if config.original_task_only:
        pool = [t for t in pool if t.metadata.original_task]
    if not pool:
        raise ConfigError(f"template: no template left to apply from {', '.join(config.templates)}")
    return pool


class _Location:
    """Where a row came from, worked out only when an error message needs it."""

    __slots__ = ("row", "document")

    def __init__(self, row: dict[str, Any], document: bool) -> None:
        self.row, self.document = row, document

    def __str__(self) -> str:
        if self.document:
            return f"{self.row['url_or_path']} (id {self.row['id']})"
        from instruct.io.readers.dataset import row_location

        return row_location(self.row.get("meta"), str(self.row["id"]))


def _rows(table: pa.Table) -> tuple[list[dict[str, Any]], list[_Location]]:
    """Template rows and their locations; DOCUMENT rows unfold the fields kept in their meta."""
    rows = table.to_pylist()
    if set(table.column_names) != set(DOCUMENT_SCHEMA.names):
        return rows, [_Location(row, False) for row in rows]
    unfolded = []
    for row in rows:
        fields = json.loads(row["meta"]) if row["meta"] else {}
        unfolded.append({**fields, "text": row["text"], "id": row["id"]})
    return unfolded, [_Location(row, True) for row in rows]
