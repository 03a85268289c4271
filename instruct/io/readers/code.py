"""Source trees: one file = one document, the language named from the extension in `meta`.

What is not hand-written source is skipped and counted as rejected with a reason, never
silently: vendored or generated folders (`vendored_dir`: node_modules, vendor, third_party,
.git, ...), binaries (`binary`: known binary extensions or a NUL byte), minified files
(`minified`: a `.min.` name, or very long lines on average), files of no known language
(`unknown_language`) and oversized files (`too_large`).

    read: {format: code, paths: [data/generated/code/], options: {max_mean_line_length: 200}}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from instruct.io.readers.base import Reject
from instruct.io.readers.text import FilesOptions, FilesReader, file_meta

LANGUAGES = {
    ".py": "python", ".pyi": "python", ".pyx": "cython", ".c": "c", ".h": "c", ".cc": "c++", ".cpp": "c++",
    ".cxx": "c++", ".hpp": "c++", ".hh": "c++", ".cu": "cuda", ".rs": "rust", ".go": "go", ".java": "java",
    ".kt": "kotlin", ".scala": "scala", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".rb": "ruby", ".php": "php",
    ".cs": "c#", ".swift": "swift", ".m": "objective-c", ".lua": "lua", ".pl": "perl", ".r": "r", ".jl": "julia",
    ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir", ".erl": "erlang", ".clj": "clojure", ".dart": "dart",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ps1": "powershell", ".sql": "sql", ".html": "html",
    ".css": "css", ".scss": "scss", ".vue": "vue", ".md": "markdown", ".rst": "restructuredtext",
    ".tex": "tex", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json", ".xml": "xml",
    ".proto": "protobuf", ".cmake": "cmake", ".mk": "makefile", ".f90": "fortran", ".zig": "zig", ".nim": "nim",
}
FILENAMES = {"Makefile": "makefile", "Dockerfile": "dockerfile", "CMakeLists.txt": "cmake", "Rakefile": "ruby",
             "Gemfile": "ruby", "BUILD": "starlark", "WORKSPACE": "starlark"}
VENDORED_DIRS = frozenset({"node_modules", "vendor", "vendored", "third_party", "thirdparty", "3rdparty",
                           "bower_components", "site-packages", ".git", ".hg", ".svn", "__pycache__", ".tox",
                           ".venv", "venv", ".mypy_cache", ".pytest_cache", "dist"})
BINARY_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz",
    ".zst", ".7z", ".tar", ".jar", ".class", ".so", ".dylib", ".dll", ".exe", ".o", ".a", ".pyc", ".pyo",
    ".whl", ".bin", ".dat", ".db", ".sqlite", ".woff", ".woff2", ".ttf", ".otf", ".mp3", ".mp4", ".wav",
    ".npy", ".npz", ".pt", ".safetensors", ".arrow", ".parquet", ".pkl",
})


@dataclass
class CodeOptions(FilesOptions):
    files_per_unit: int = 256
    max_file_bytes: int = 1 << 20  # larger source files are usually generated data
    max_line_length: int = 1000  # a file with a line this long ...
    max_mean_line_length: int = 200  # ... or lines this long on average is minified / a data blob
    languages: list[str] | None = None  # keep only these languages; None: every known one


def language_of(path: str) -> str | None:
    name = Path(path).name
    return FILENAMES.get(name) or LANGUAGES.get(Path(name).suffix.lower())


class CodeReader(FilesReader):
    format = "code"
    default_source = "code"
    Options: ClassVar[type] = CodeOptions

    def skip_dir(self, name: str) -> str | None:
        return "vendored_dir" if name in VENDORED_DIRS else None

    def parse(self, path: str, root: str, data: bytes) -> dict | Reject:
        name = os.path.basename(path)
        if Path(name).suffix.lower() in BINARY_EXTENSIONS or b"\0" in data[:8192]:
            return self.reject(path, "binary")
        language = language_of(path)
        if language is None:
            return self.reject(path, "unknown_language", Path(name).suffix or name)
        if self.options.languages is not None and language not in self.options.languages:
            return self.reject(path, "language_not_selected", language)
        text = self.decode_utf8(path, data)
        if isinstance(text, Reject):
            return text
        if not text.strip():
            return self.reject(path, "empty_file")
        lines = text.splitlines()
        longest = max(len(line) for line in lines)
        mean = sum(len(line) for line in lines) / len(lines)
        if ".min." in name or longest > self.options.max_line_length or mean > self.options.max_mean_line_length:
            return self.reject(path, "minified", f"longest line {longest:,}, mean {mean:,.0f} characters")
        meta = file_meta(path, root, data, language=language, lines=len(lines), repo=os.path.basename(root))
        return self.document(text, path, meta=meta)
