"""Run `instruct serve` in a child process (own interpreter, own GIL): for benchmarks, crash tests and scripts."""
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def server_process(*args: str, timeout: float = 120.0) -> Iterator[str]:
    """Start `instruct serve --port 0 ARGS...`, yield its base URL once it listens, stop it afterwards."""
    command = [sys.executable, "-m", "instruct", "serve", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = _first_line(process, timeout)
        match = re.search(r"(http://\S+/v1)", line)
        if match is None:
            raise RuntimeError(f"`{' '.join(command)}` did not start: {line!r}")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    import threading

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""
