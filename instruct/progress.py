"""Progress bars for long work: tqdm on stderr, silent when disabled or not wanted."""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_bar(enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar; `INSTRUCT_NO_PROGRESS=1` turns every bar off (e.g. in CI logs)."""
    disable = not enabled or os.environ.get("INSTRUCT_NO_PROGRESS") == "1"
    return tqdm(disable=disable, dynamic_ncols=True, **kwargs)
