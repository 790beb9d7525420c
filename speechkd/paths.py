"""Where speechkd keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def speechkd_home() -> Path:
    """Root of speechkd's caches: `$SPEECHKD_HOME`, default `~/.cache/speechkd`."""
    return Path(os.environ.get("SPEECHKD_HOME") or Path.home() / ".cache" / "speechkd").expanduser()
