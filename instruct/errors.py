"""User-facing errors: the CLI prints them as one line on stderr and exits 2; anything else is a bug.

Exit codes of every `instruct` command (also in the README):
    0  success
    1  an unexpected error (a bug: Python prints a traceback); `templates check`: a template failed
    2  a user error: a bad recipe, flag or input, an output folder in use or not ours, an endpoint that
       refuses us, or a run that wrote nothing because its requests failed or every record was dropped
       (one line, `Error: ...`; `--allow-empty` accepts an empty build, export or synth)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click

from instruct.config import ConfigError
from instruct.io.readers.base import InputError
from instruct.schema import SchemaError

USER_ERROR_EXIT = 2
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, InputError, SchemaError, FileNotFoundError)


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
