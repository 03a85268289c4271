"""User-facing errors: the CLI prints them as one line and exits 2; everything else is a bug."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click

from instruct.config import ConfigError
from instruct.io.readers.base import InputError
from instruct.schema import SchemaError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, InputError, SchemaError, FileNotFoundError)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected errors (bad recipe, bad input) into a clean one-line message."""
    try:
        yield
    except USER_ERRORS as error:
        raise click.ClickException(str(error)) from None
