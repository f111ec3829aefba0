"""Where sqlft keeps what it builds once and reuses: converted models, prepared databases.

Default ~/.cache/sqlft; set SQLFT_CACHE to move it (shown by `sqlft info`).
"""

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("SQLFT_CACHE") or Path.home() / ".cache" / "sqlft")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
