"""Input readers by format name; `open_reader(config)` is what the runner calls."""
from __future__ import annotations

import importlib

from instruct.config import ConfigError
from instruct.io.readers.base import InputError, ReadBatch, ReadConfig, Reader, Reject, WorkUnit

# format name -> module that defines the Reader subclass for it (imported on first use)
READER_MODULES = {
    "jsonl": "instruct.io.readers.jsonl",
    "parquet": "instruct.io.readers.parquet",
    "arrow": "instruct.io.readers.arrow",
    "text": "instruct.io.readers.text",
    "code": "instruct.io.readers.code",
    "html": "instruct.io.readers.html",
    "warc": "instruct.io.readers.warc",
    "dataset": "instruct.io.readers.dataset",
    "preference": "instruct.io.readers.preference",
}


def reader_class(format_name: str) -> type[Reader]:
    module_name = READER_MODULES.get(format_name)
    if module_name is None:
        raise ConfigError(f"unknown input format {format_name!r}; available: {', '.join(sorted(READER_MODULES))}")
    module = importlib.import_module(module_name)
    return next(cls for cls in vars(module).values()
                if isinstance(cls, type) and issubclass(cls, Reader) and cls.format == format_name)


def open_reader(config: ReadConfig, strict: bool = False) -> Reader:
    return reader_class(config.format)(config, strict=strict)


__all__ = ["InputError", "ReadBatch", "ReadConfig", "Reader", "Reject", "WorkUnit", "open_reader", "reader_class"]
