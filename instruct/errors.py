"""User-facing errors: the CLI prints them as one line on stderr and exits 2; anything else is a bug.

Exit codes of every `instruct` command (also in the README):
    0  success
    1  an unexpected error (a bug: Python prints a traceback); `templates check`: a template failed
    2  a user error: a bad recipe, flag or input, an output folder in use or not ours, an endpoint that
       refuses us, or a run that wrote nothing because its requests failed or every record was dropped
       (one line, `Error: ...`; `--allow-empty` accepts an empty build, export or synth)

A step that raises anything else on a unit of a build becomes a `UnitError` (exit 1) naming the
step and the unit, with the traceback of the process it ran in, whichever executor ran it.
"""
from __future__ import annotations

import traceback as tb
from contextlib import contextmanager
from typing import Any, Iterator

import click

from instruct.config import ConfigError
from instruct.io.readers.base import InputError
from instruct.schema import SchemaError

USER_ERROR_EXIT = 2
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, InputError, SchemaError, FileNotFoundError)


class UnitError(RuntimeError):
    """A step failed on one unit (a bug, a broken model: not bad input). Its state is four strings,
    so it crosses a process pool by pickle and a Ray worker as data (`state`) unchanged."""

    def __init__(self, step: str, unit: str, error: str, traceback: str = "") -> None:
        super().__init__(step, unit, error, traceback)
        self.step, self.unit, self.error, self.traceback = step, unit, error, traceback

    @classmethod
    def from_exception(cls, step: str, unit: str, error: BaseException) -> UnitError:
        return cls(step, unit, f"{type(error).__name__}: {error}", "".join(tb.format_exception(error)))

    def __str__(self) -> str:
        return f"step {self.step} failed on unit {self.unit}: {self.error}\n{self.traceback}".rstrip()


# errors a worker hands back to the driver as (class name, args); anything else is a UnitError
CROSSING_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, UnitError)


def error_state(error: Exception) -> dict[str, Any]:
    """A CROSSING_ERRORS exception as JSON-able data: its class name and constructor arguments."""
    return {"type": type(error).__name__, "args": list(error.args)}


def error_from_state(state: dict[str, Any]) -> Exception:
    """The exception `error_state` described, rebuilt on the driver (only CROSSING_ERRORS classes)."""
    kind = next(kind for kind in CROSSING_ERRORS if kind.__name__ == state["type"])
    return kind(*state["args"])


class UserError(click.ClickException):
    """A ClickException with the user-error exit code (click's own default is 1)."""

    exit_code = USER_ERROR_EXIT


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected errors (bad recipe, bad input) into a clean one-line message and exit code 2."""
    try:
        yield
    except USER_ERRORS as error:
        raise UserError(str(error)) from None


def fail_if_nothing_written(written: int, usage: dict, output: str) -> None:
    """A run whose every result was lost to failed requests is an error, not an empty success."""
    failures = usage.get("failures") or {}
    if written == 0 and failures:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(failures.items()))
        raise UserError(f"wrote nothing: {sum(failures.values())} request(s) failed ({reasons}); "
                        f"see {output}/manifest.json")
