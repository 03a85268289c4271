"""Validate templates against rows: fields exist, answer choices render, targets come out non-empty.

Used by `instruct templates check` and by tests; returns data, the CLI prints it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from instruct.templates.render import Template, TemplateError


@dataclass
class CheckResult:
    template: Template
    missing_fields: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # rendered / unlabeled / no_target / empty_target ...
    example: tuple[str, str] | None = None
    choices: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.missing_fields and not self.errors and self.outcomes["rendered"] > 0

    def problem(self) -> str:
        if self.missing_fields:
            return f"field(s) not in the data: {', '.join(self.missing_fields)}"
        if self.errors:
            return self.errors[0]
        return "no sample row yields a target (" + ", ".join(f"{k}: {n}" for k, n in self.outcomes.items()) + ")"


def check_template(template: Template, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   seed: int = 0) -> CheckResult:
    result = CheckResult(template, missing_fields=sorted(template.fields - set(columns)))
    if result.missing_fields:
        return result
    for position, row in enumerate(rows):
        try:
            outcome = template.render(row, seed=seed, where=f"{position} of the sample")
            if isinstance(outcome, tuple):
                result.outcomes["rendered"] += 1
                if result.example is None:
                    result.example = outcome
                    result.choices = None if template.metadata.inverted else template.answer_choices(row, seed=seed)
            else:
                result.outcomes[outcome] += 1
        except TemplateError as error:
            result.errors.append(str(error))
            break
    return result


def check_all(templates: Sequence[Template], rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
              seed: int = 0) -> list[CheckResult]:
    return [check_template(t, rows, columns, seed) for t in templates]
