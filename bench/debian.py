"""Fetch and unpack a Debian package once (`apt-get download` + `dpkg-deb -x`) for benchmarks.

Real third-party text is never committed; benchmarks pull it from the distribution at run time.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("INSTRUCT_CACHE", Path.home() / ".cache" / "instruct")) / "debian"


def unpacked(package: str) -> Path:
    """The root folder of `package` unpacked under the cache (downloaded on first use)."""
    root = CACHE / package
    if (root / ".done").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        fetched = subprocess.run(["apt-get", "download", package], cwd=download, capture_output=True, text=True)
        if fetched.returncode != 0:
            raise SystemExit(f"apt-get download {package} failed (try `apt-get update` first): "
                             f"{fetched.stderr.strip().splitlines()[-1] if fetched.stderr.strip() else fetched.returncode}")
        (deb,) = Path(download).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".done").touch()
    return root


def python_doc_html() -> list[Path]:
    """The Sphinx HTML pages of the Python 3.11 documentation (about 500 pages)."""
    root = unpacked("python3.11-doc")
    return sorted(p for p in root.rglob("*.html") if "genindex" not in p.name)
