"""One template = one compiled Jinja program that turns a dataset row into (prompt, target).

Rendering follows promptsource exactly (so any of its templates gives the same strings):
the row's string fields have `|||` escaped, `answer_choices` is rendered first and split on
`|||`, the template is rendered and split on `|||`, and each part is un-escaped and stripped.
Differences on purpose: a sandboxed environment with StrictUndefined (a missing or None
field is an error naming template, dataset and row, never an empty string or 'None'); no
2048-character truncation; rows without a label (missing, None, "" or -1) return None instead
of `answer_choices[-1]`; and the random filters draw from a generator seeded per row, so
output never depends on worker count or order.
"""
from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, pass_context
from jinja2.runtime import Context, new_context
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from instruct.config import ConfigError

PIPE = "|||"
PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"  # promptsource's placeholder, kept for identical output
RANDOM_KEY = "_instruct_random"  # context variable holding the row's lazily seeded generator
UNLABELED = "unlabeled"
NO_TARGET = "no_target"  # the template rendered no `|||` (target in a branch not taken)
EMPTY_TARGET = "empty_target"
EMPTY_PROMPT = "empty_prompt"
MAX_RENDER_CHARS = 4_000_000  # per rendered row and per value made inside a template (str * n, a + b, filters)
MAX_RENDER_SECONDS = 2.0  # per rendered row; real templates take microseconds
MAX_INT_BITS = 1 << 16  # integers a template may build with * and ** (10**9**9 would never finish)


class TemplateError(ConfigError):
    """A template that cannot be compiled or rendered; names template, dataset and row."""


class _PrintedNone(ValueError):
    """A template printed None: the field is missing in this row (datasets fills absent keys with None)."""


def _finalize(value: Any) -> Any:
    if value is None:
        raise _PrintedNone()
    return value


class RowRandom:
    """A random.Random seeded from (seed, template, row id) on first use; rows that never draw pay nothing.

    A row without an `id` is identified by its content (JSON with sorted keys).
    """

    __slots__ = ("_parts", "_row", "_rng")

    def __init__(self, seed: int, template_id: str, row: Mapping[str, Any] | None) -> None:
        self._parts, self._row = (seed, template_id), row
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            row = self._row or {}
            row_key = row["id"] if "id" in row else json.dumps(row, sort_keys=True, default=str)
            self._rng = random.Random(stable_seed(*self._parts, row_key))
        return self._rng


def stable_seed(*parts: Any) -> int:
    """A 64-bit seed from any parts; identical in every process (unlike hash())."""
    digest = hashlib.blake2b("\x00".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


@pass_context
def _choice(context: Context, seq: Sequence[Any]) -> Any:
    """promptsource's `choice` filter, drawing from the row's generator."""
    return context[RANDOM_KEY].rng.choice(seq)


@pass_context
def _random(context: Context, seq: Sequence[Any]) -> Any:
    """Jinja's builtin `random` filter, drawing from the row's generator."""
    try:
        return context[RANDOM_KEY].rng.choice(seq)
    except IndexError:
        return context.environment.undefined("No random item, sequence was empty.")


def _most_frequent(items: Sequence[Any]) -> list[Any] | None:
    """promptsource's `most_frequent`: the items tied for the highest count, in first-seen order."""
    if not items:
        return None
    counts = Counter(items).most_common()
    return [item for item, n in counts if n == counts[0][1]]


def _highlight(text: str) -> str:
    return "<span style='color: #F08080'>" + text + "</span>"


class TemplateLimit(SecurityError):
    """A template exceeded a resource limit (size of a value or of the output, rendering time)."""


class LimitedSandbox(SandboxedEnvironment):
    """The sandbox plus resource limits: sizes of what `*`, `**`, `+` and calls build, and a deadline.

    The deadline is checked at every call, attribute and item access and output piece, so nested
    loops that do anything stop; `range` is already capped by Jinja's sandbox (MAX_RANGE).
    """

    intercepted_binops = frozenset({"*", "**", "+"})
    deadline = float("inf")

    def start(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took over {MAX_RENDER_SECONDS:g} s")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.check_time()
        integers = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and integers and right > 0 and max(left.bit_length(), 1) * right > MAX_INT_BITS:
            raise TemplateLimit(f"{left} ** {right} is too large")
        if operator == "*" and integers and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit("a product too large")
        if operator == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(count, int) and hasattr(sized, "__len__") and len(sized) * count > MAX_RENDER_CHARS:
                raise TemplateLimit(f"a repetition of {len(sized) * count:,} items > {MAX_RENDER_CHARS:,}")
        sized = hasattr(left, "__len__") and hasattr(right, "__len__")
        if operator == "+" and sized and len(left) + len(right) > MAX_RENDER_CHARS:
            raise TemplateLimit(f"a concatenation of {len(left) + len(right):,} items > {MAX_RENDER_CHARS:,}")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.check_time()
        _check_sizes(args, kwargs)  # padding widths etc.: refuse before allocating
        result = super().call(__context, __obj, *args, **kwargs)
        if hasattr(result, "__len__") and not isinstance(result, range) and len(result) > MAX_RENDER_CHARS:
            raise TemplateLimit(f"a value of {len(result):,} items > {MAX_RENDER_CHARS:,}")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.check_time()
        return super().getitem(obj, argument)


def _check_sizes(args: tuple, kwargs: dict) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_RENDER_CHARS:
            raise TemplateLimit(f"argument {value:,} > {MAX_RENDER_CHARS:,}")


def make_environment() -> SandboxedEnvironment:
    """promptsource's settings (default whitespace handling, no autoescape) in a limited sandbox."""
    env = LimitedSandbox(undefined=StrictUndefined, finalize=_finalize)
    env.globals.update(zip=zip)
    env.filters.update(choice=_choice, random=_random, most_frequent=_most_frequent, highlight=_highlight)
    env.filters = {name: _limited(function) for name, function in env.filters.items()}  # filters bypass env.call
    return env


def _limited(function: Any) -> Any:
    """A filter that refuses size arguments over the limit (`center(10**9)`) before allocating."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        ENV.check_time()
        _check_sizes(args, kwargs)
        return function(*args, **kwargs)

    return call


ENV = make_environment()
_ENV_GLOBALS = frozenset(ENV.globals)


@dataclass
class TemplateMetadata:
    """promptsource's metadata fields, plus whether this is an inverted (answer -> question) template."""

    original_task: bool | None = None
    choices_in_prompt: bool | None = None
    metrics: list[str] | None = None
    languages: list[str] | None = None
    inverted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Template:
    """A compiled template. `apply(row)` -> (prompt, target) or None; `answer_choices(row)` -> list or None."""

    def __init__(self, *, id: str, name: str, jinja: str, answer_choices: str | None = None,
                 metadata: TemplateMetadata | None = None, dataset: str = "", reference: str = "",
                 system: str | None = None, label_fields: Sequence[str] = ("label",), path: str = "",
                 answer_pattern: str | None = None) -> None:
        self.id, self.name, self.jinja = str(id), str(name), jinja
        self.answer_pattern = answer_pattern  # CoT templates: regex whose group 1 is the final answer
        self.answer_choices_jinja = answer_choices
        self.metadata = metadata or TemplateMetadata()
        self.dataset, self.reference, self.system, self.path = dataset, reference, system, path
        self._globals = dict(ENV.globals)  # flattened once; jinja would walk a ChainMap on every render
        self._program = self._compile(jinja, "jinja")
        self._choices_program = self._compile(answer_choices, "answer_choices") if answer_choices else None
        self.fields = self._variables(jinja) | (self._variables(answer_choices) if answer_choices else set())
        self.fields.discard("answer_choices")
        # the label fields this template actually reads; a row missing one of them is unlabeled
        self.label_fields = tuple(f for f in label_fields if f in self.fields)
        self._fixed_choices = (self._split_choices(self._render(self._choices_program, {}, None))
                               if self._choices_program is not None and not self._variables(answer_choices)
                               else None)

    # --- public API -------------------------------------------------------------------------
    def apply(self, row: Mapping[str, Any], *, seed: int = 0, where: Any = None) -> tuple[str, str] | None:
        """(prompt, target), each stripped; None for an unlabeled row or one that yields no target."""
        result = self.render(row, seed=seed, where=where)
        return result if isinstance(result, tuple) else None

    def answer_choices(self, row: Mapping[str, Any], *, seed: int = 0, where: Any = None) -> list[str] | None:
        if self._choices_program is None:
            return None
        if self._fixed_choices is not None:
            return list(self._fixed_choices)
        return self._row_choices(_protect(row), RowRandom(seed, self.id, row), row, where)

    def render(self, row: Mapping[str, Any], *, seed: int = 0, where: Any = None) -> tuple[str, str] | str:
        """(prompt, target), or the reason there is none: 'unlabeled', 'no_target', 'empty_target', 'empty_prompt'."""
        for name in self.label_fields:
            value = row.get(name)
            if value is None or value == "" or (value == -1 and not isinstance(value, bool)):
                return UNLABELED
            self._check_index(name, value, row, where)
        protected = _protect(row)
        if "answer_choices" in protected:
            raise self.error("the row has a field named 'answer_choices', which templates reserve", row, where)
        rng = RowRandom(seed, self.id, row)
        if self._choices_program is not None:
            # a copy of the fixed choices: a template may mutate its list
            protected["answer_choices"] = (list(self._fixed_choices) if self._fixed_choices is not None
                                           else self._row_choices(protected, rng, row, where))
        else:
            protected["answer_choices"] = None
        protected[RANDOM_KEY] = rng
        parts = self._render(self._program, protected, rng, row, where).split(PIPE)
        if len(parts) == 1:
            return NO_TARGET
        if len(parts) > 2:
            raise self.error(f"rendered {len(parts) - 1} '|||' separators; exactly one splits prompt from target",
                             row, where)
        prompt = parts[0].replace(PIPE_PROTECTOR, PIPE).strip()
        target = parts[1].replace(PIPE_PROTECTOR, PIPE).strip()
        if not target:
            return EMPTY_TARGET
        if not prompt:
            return EMPTY_PROMPT
        return prompt, target

    @property
    def fixed_answer_choices(self) -> list[str] | None:
        """The answer choices when they do not depend on the row (promptsource's fixed choices), else None."""
        return None if self._fixed_choices is None else list(self._fixed_choices)

    def describe(self) -> str:
        return f"template {self.name!r} ({self.id}) of dataset {self.dataset or '?'!r}"

    def _check_index(self, name: str, value: Any, row: Mapping[str, Any], where: Any) -> None:
        """A label indexing fixed answer choices must be one of their indexes (else Jinja fails obscurely)."""
        choices = self._fixed_choices
        indexed = re.search(rf"answer_choices\s*\[\s*{re.escape(name)}\s*\]", self.jinja)
        if choices is None or not indexed or (isinstance(value, int) and 0 <= value < len(choices)):
            return
        raise self.error(f"{name} must be an index into answer_choices (0..{len(choices) - 1}: "
                         f"{', '.join(choices)}), got {value!r}; map raw labels with the template step's "
                         f"label_map (e.g. label_map: {{{value!r}: 0}})", row, where)

    def error(self, message: str, row: Mapping[str, Any] | None = None, where: Any = None) -> TemplateError:
        if where is None and row is not None and "id" in row:
            where = f"id {row['id']}"
        return TemplateError(f"{self.describe()}" + (f", row {where}" if where else "") + f": {message}")

    def __repr__(self) -> str:
        return f"Template({self.name!r}, id={self.id!r}, dataset={self.dataset!r})"

    # --- internals --------------------------------------------------------------------------
    def _compile(self, source: str, what: str) -> Any:
        try:
            return ENV.from_string(source)
        except TemplateSyntaxError as error:
            raise self.error(f"{what} does not compile: {error.message} (line {error.lineno})") from None

    @staticmethod
    def _variables(source: str) -> set[str]:
        return set(meta.find_undeclared_variables(ENV.parse(source))) - _ENV_GLOBALS

    def _row_choices(self, protected: dict[str, Any], rng: RowRandom, row: Mapping[str, Any],
                     where: Any) -> list[str]:
        context = dict(protected)
        context[RANDOM_KEY] = rng
        return self._split_choices(self._render(self._choices_program, context, rng, row, where))

    @staticmethod
    def _split_choices(rendered: str) -> list[str]:
        return [choice.strip().replace(PIPE_PROTECTOR, PIPE) for choice in rendered.split(PIPE)]

    def _render(self, program: Any, context: dict[str, Any], rng: RowRandom | None,
                row: Mapping[str, Any] | None = None, where: Any = None) -> str:
        if rng is None:
            context = {**context, RANDOM_KEY: RowRandom(0, self.id, None)}
        try:
            # Template.render minus its per-call copies: the globals were flattened once at compile time
            variables = {**self._globals, **context}
            ENV.start()
            pieces, size = [], 0
            for piece in program.root_render_func(
                    new_context(ENV, program.name, program.blocks, variables, shared=True, globals=self._globals)):
                pieces.append(piece)
                size += len(piece)
                if size > MAX_RENDER_CHARS:
                    raise TemplateLimit(f"output over {MAX_RENDER_CHARS:,} characters")
                ENV.check_time()
            return "".join(pieces)
        except SecurityError as error:
            raise self.error(f"refused by the sandbox: {error}", row, where) from None
        except _PrintedNone:
            empty = sorted(f for f in self.fields if row is not None and f in row and row[f] is None)
            raise self.error(f"field(s) {', '.join(map(repr, empty)) or '?'} are None (missing) in this row, "
                             "so the template would print 'None'", row, where) from None
        except Exception as error:  # any failure inside a template is the template's or the row's fault
            raise self.error(f"{type(error).__name__}: {error}", row, where) from None


def _protect(row: Mapping[str, Any]) -> dict[str, Any]:
    """Escape `|||` inside string fields so that only the template's own separator splits."""
    return {key: value.replace(PIPE, PIPE_PROTECTOR) if isinstance(value, str) else value
            for key, value in row.items()}
