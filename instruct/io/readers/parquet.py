"""Parquet files, streamed in row batches; same column mapping as the arrow reader.

    read: {format: parquet, paths: ["corpus/*.parquet"], text_field: content, id_field: doc_id}
"""
from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from instruct.io.readers.arrow import TableReader


class ParquetReader(TableReader):
    format = "parquet"
    default_source = "parquet"

    def file_schema(self, path: str) -> pa.Schema:
        return pq.read_schema(path)

    def file_batches(self, path: str) -> Iterator[pa.RecordBatch]:
        with pq.ParquetFile(path) as handle:
            yield from handle.iter_batches(batch_size=self.config.batch_size)
