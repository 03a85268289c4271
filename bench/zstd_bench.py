"""Reading .zst JSONL: lines/s on ordinary data, and time and memory on a decompression bomb.

    python bench/zstd_bench.py [--mib 120] [--bomb-mib 150]

Measured in the same run, each in a fresh process (peak RSS is per process):
  * instruct's ZstdStream (fed 1 KiB of input at a time, output handed out through a memoryview;
    raises on a cut file), read line by line as the jsonl reader does;
  * the previous ZstdStream (whole 1 MiB input chunks, `bytes` re-sliced per read) - the baseline;
  * zstandard's own stream_reader, the peer a user would pick (but it stops silently on a cut file).
The bomb is one JSON line of `--bomb-mib` MiB of "a" (a few KB compressed), read under the
jsonl reader's `read.max_record_bytes` skip; the old stream is stopped after 60 s.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time

import zstandard

from instruct.io.streams import ZstdStream, bounded_lines


class OldZstdStream(io.RawIOBase):
    """The reader before issue 15, verbatim in behaviour: unbounded chunk inflation, quadratic re-slicing."""

    def __init__(self, raw, chunk: int = 1 << 20) -> None:
        self.raw, self.chunk = raw, chunk
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            data = self.raw.read(self.chunk)
            if not data:
                return 0
            while data:
                self.pending += self.decompressor.decompress(data)
                data = self.decompressor.unused_data if self.decompressor.eof else b""
                if self.decompressor.eof:
                    self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def open_stream(kind: str, data: bytes):
    raw = io.BytesIO(data)
    if kind == "instruct":
        return io.BufferedReader(ZstdStream(raw))
    if kind == "old":
        return io.BufferedReader(OldZstdStream(raw))
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))


def measure(kind: str, path: str) -> None:
    """Child process: read every line under a 16 MiB limit, print lines, seconds, peak RSS (MiB)."""
    data = open(path, "rb").read()
    started = time.perf_counter()
    lines = sum(1 for _ in bounded_lines(open_stream(kind, data), 16 << 20))
    seconds = time.perf_counter() - started
    print(json.dumps({"lines": lines, "seconds": seconds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(kind: str, path: str, timeout: float) -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--child", kind, path], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
        return json.loads(out)
    except subprocess.TimeoutExpired:
        return {"lines": None, "seconds": float("inf"), "rss_mib": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=120)
    parser.add_argument("--bomb-mib", type=int, default=150)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        return measure(*args.child)
    import tempfile

    folder = tempfile.mkdtemp()
    line = b'{"id": "%d", "text": "an ordinary record of text, number %d, with a few more words"}\n'
    count = (args.mib << 20) // len(line % (0, 0))
    ordinary = f"{folder}/ordinary.jsonl.zst"
    with open(ordinary, "wb") as handle:
        handle.write(zstandard.ZstdCompressor(level=3).compress(b"".join(line % (i, i) for i in range(count))))
    bomb = f"{folder}/bomb.jsonl.zst"
    with open(bomb, "wb") as handle:
        handle.write(zstandard.ZstdCompressor(level=19).compress(b'{"text": "' + b"a" * (args.bomb_mib << 20) + b'"}\n'))
    print(f"ordinary: {args.mib} MiB of JSONL; bomb: {args.bomb_mib} MiB line in "
          f"{len(open(bomb, 'rb').read()):,} bytes\n")
    print("| input | reader | lines | seconds | MiB/s | peak RSS MiB |\n| --- | --- | --- | --- | --- | --- |")
    results = {}
    for name, path, mib in (("ordinary", ordinary, args.mib), ("bomb", bomb, args.bomb_mib)):
        for kind in ("old", "instruct", "stream_reader"):
            result = results[name, kind] = run(kind, path, 60)
            print(f"| {name} | {kind} | {result['lines']} | {result['seconds']:.2f} | {mib / result['seconds']:.0f} "
                  f"| {result['rss_mib']:.0f} |")
    ratio = results["ordinary", "old"]["seconds"] / results["ordinary", "instruct"]["seconds"]
    peer = results["ordinary", "stream_reader"]["seconds"] / results["ordinary", "instruct"]["seconds"]
    bomb_ratio = results["bomb", "old"]["seconds"] / results["bomb", "instruct"]["seconds"]
    print(f"\nordinary: instruct {ratio:.2f}x the old reader's speed, {peer:.2f}x stream_reader's; "
          f"bomb: old/instruct time {bomb_ratio:.1f}x")


if __name__ == "__main__":
    main()
