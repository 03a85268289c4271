"""Labeled datasets through `datasets`: csv/tsv, json/jsonl, parquet, arrow files or a saved dataset folder.

Rows stay raw (the dataset's own columns, as `datasets` types them, ClassLabel as int), plus an
`id` (the `id_field` column as a string, else `UNIT/SPLIT/ROW`) and a `meta` JSON column with
the file, split and row number, so a template error can name the exact row. One unit per path.

    read: {format: dataset, paths: [data/sst/], options: {split: "validation[:500]"}}

`split` selects a split of a folder (a `save_to_disk` folder, or files named by split such as
train.csv / test.jsonl); a single file is one split, named by `split` or by its file name. A
slice `[a:b]` (rows or %) applies in every case.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from instruct.config import ConfigError
from instruct.io.readers.base import InputError, ReadBatch, Reader, Reject, WorkUnit

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
            ".arrow": "arrow"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
SPLIT_NAMES = ("train", "validation", "valid", "dev", "test")
_SPLIT = re.compile(r"^(?P<name>[\w.-]+)?(?:\[(?P<start>-?\d*%?):(?P<stop>-?\d*%?)\])?$")


@dataclass
class DatasetOptions:
    """`read.options` of the dataset reader."""

    split: str = ""  # "train", "test[:100]", "validation[10%:20%]"; empty: train (or the file's name)
    builder: str = ""  # csv, json, parquet, arrow; empty: from the file extension
    delimiter: str = ""  # csv/tsv field separator; empty: "," (or tab for .tsv)


@dataclass(frozen=True)
class SplitSpec:
    name: str | None
    start: str
    stop: str

    @classmethod
    def parse(cls, text: str) -> "SplitSpec":
        match = _SPLIT.match(text.strip())
        if not match:
            raise ConfigError(f"split {text!r}: expected NAME, NAME[a:b] or NAME[a%:b%]")
        return cls(match["name"], match["start"] or "", match["stop"] or "")

    def bounds(self, rows: int) -> tuple[int, int]:
        def position(value: str, default: int) -> int:
            if not value:
                return default
            number = int(value[:-1]) * rows // 100 if value.endswith("%") else int(value)
            return max(0, min(rows, number if number >= 0 else rows + number))

        return position(self.start, 0), position(self.stop, rows)


def load_split(path: str, split: str = "", builder: str = "", delimiter: str = "") -> tuple[Any, str, int]:
    """(datasets.Dataset, split name, its first row number) of one file or folder.

    Errors name the file (and the line, when findable)."""
    import datasets

    spec = SplitSpec.parse(split or "")
    target = Path(path)
    datasets.disable_progress_bars()
    try:
        if target.is_dir():
            loaded, name = _load_folder(datasets, target, spec.name or "train")
        else:
            loaded, name = _load_file(datasets, target, builder, delimiter), spec.name or _split_from_name(target)
    except (InputError, ConfigError):
        raise
    except Exception as error:  # datasets wraps parser errors in several exception types
        raise InputError(_describe_load_error(target, builder, error)) from None
    start = 0
    if spec.start or spec.stop:
        start, stop = spec.bounds(len(loaded))
        loaded = loaded.select(range(start, stop))
    return loaded, name, start


def _load_folder(datasets: Any, folder: Path, split: str) -> tuple[Any, str]:
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        loaded = datasets.load_from_disk(str(folder))
    else:
        loaded = datasets.load_dataset(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise InputError(f"{folder}: no split {split!r}; splits: {', '.join(loaded)}")
        return loaded[split], split
    return loaded, split


def _load_file(datasets: Any, path: Path, builder: str, delimiter: str) -> Any:
    suffixes = [s for s in path.suffixes if s not in COMPRESSIONS]
    builder = builder or BUILDERS.get(suffixes[-1] if suffixes else "", "")
    if not builder:
        raise ConfigError(f"{path}: cannot tell the format from the extension; set read.options.builder "
                          f"({', '.join(sorted(set(BUILDERS.values())))})")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    kwargs: dict[str, Any] = {}
    if builder == "csv":
        kwargs["delimiter"] = delimiter or ("\t" if ".tsv" in path.suffixes else ",")
    return datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **kwargs)


def _split_from_name(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    return next((name for name in SPLIT_NAMES if stem == name or stem.endswith(("_" + name, "-" + name))),
                "train")


def _describe_load_error(path: Path, builder: str, error: Exception) -> str:
    """datasets reports bad JSON without a line number; find the first bad line ourselves."""
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    if _is_json_lines(path, builder):
        from instruct.io.readers.jsonl import open_text_stream

        with open_text_stream(str(path)) as raw:
            for number, line in enumerate(raw, start=1):
                if line.strip():
                    try:
                        json.loads(line)
                    except ValueError as bad:
                        return f"{path}:{number}: invalid JSON ({getattr(bad, 'msg', bad)})"
    return f"{path}: cannot load ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"


class DatasetReader(Reader):
    format = "dataset"
    default_source = "dataset"
    Options = DatasetOptions

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        for path in unit.paths:
            rejects: list[Reject] = []
            try:
                loaded, split, offset = load_split(path, self.options.split, self.options.builder,
                                                   self.options.delimiter)
            except InputError as error:
                if self.strict:
                    raise
                if not _is_json_lines(Path(path), self.options.builder):
                    yield ReadBatch(self.schema.empty_table(), [self.reject(path, "unreadable_file", str(error))])
                    continue
                loaded, split, offset, rejects = self._load_valid_lines(path)
            table = loaded.with_format("arrow")[:] if loaded is not None else None
            if table is None or not table.num_rows:
                yield ReadBatch(self.schema.empty_table(), rejects)
                continue
            for start in range(0, table.num_rows, self.config.batch_size):
                batch = table.slice(start, self.config.batch_size)
                yield ReadBatch(self._with_id_and_meta(batch, unit, path, split, offset + start),
                                rejects if start == 0 else [])

    def _load_valid_lines(self, path: str) -> tuple[Any, str, int, list[Reject]]:
        """A JSON Lines file `datasets` refused: each bad line a reject naming it, the other lines loaded."""
        from instruct.io.readers.jsonl import parse_json_line
        from instruct.io.streams import open_text_stream

        rejects, good = [], []
        with open_text_stream(path) as raw:
            for number, line in enumerate(raw, start=1):
                if not line.strip():
                    continue
                value, reason, detail, decoded = parse_json_line(line)
                if reason is not None:
                    rejects.append(self.reject(f"{path}:{number}", reason, detail, decoded))
                else:
                    good.append(line.rstrip(b"\r\n") + b"\n")
        split = self.options.split or _split_from_name(Path(path))
        if not good:
            return None, split, 0, rejects
        with tempfile.TemporaryDirectory() as folder:
            clean = Path(folder) / (Path(path).name.split(".")[0] + ".jsonl")
            clean.write_bytes(b"".join(good))
            loaded, split, offset = load_split(str(clean), split, "json", self.options.delimiter)
        return loaded, split, offset, rejects

    def _with_id_and_meta(self, table: pa.Table, unit: WorkUnit, path: str, split: str, first_row: int) -> pa.Table:
        rows = range(first_row, first_row + table.num_rows)
        derived = [f"{unit.key}/{split}/{row}" for row in rows]
        id_field = self.config.id_field
        if id_field in table.column_names:
            given = table.column(id_field).to_pylist()
            ids = [str(v) if v is not None else d for v, d in zip(given, derived)]
        else:
            ids = derived
        id_array = pa.array(ids, pa.string())
        if "id" in table.column_names:
            table = table.set_column(table.column_names.index("id"), "id", id_array)
        else:
            table = table.append_column("id", id_array)
        if "meta" not in table.column_names:
            metas = [json.dumps({"path": path, "split": split, "row": row}) for row in rows]
            table = table.append_column("meta", pa.array(metas, pa.string()))
        return table


def _is_json_lines(path: Path, builder: str) -> bool:
    return path.is_file() and (builder == "json" or any(s in (".json", ".jsonl") for s in path.suffixes))


def row_location(meta: str | None, row_id: str) -> str:
    """'FILE[split] row N (id X)' from the reader's meta, for error messages."""
    try:
        data = json.loads(meta) if meta else {}
    except ValueError:
        data = {}
    if isinstance(data, dict) and "row" in data:
        return f"{data.get('row')} of {data.get('path')}[{data.get('split')}] (id {row_id})"
    return f"id {row_id}"
