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


DEMO_PREFIX = "demo:"


def resolve_data_path(path: str) -> str:
    """`demo:train` / `demo:eval` name the demo sets shipped in sqlft/demo_data; other paths are returned as is."""
    if not path.startswith(DEMO_PREFIX):
        return path
    name = path[len(DEMO_PREFIX):]
    file = Path(__file__).parent / "demo_data" / f"{name}.jsonl"
    if not file.is_file():
        available = sorted(p.stem for p in file.parent.glob("*.jsonl"))
        raise FileNotFoundError(f"no demo set '{path}'; available: {', '.join(DEMO_PREFIX + a for a in available)}")
    return str(file)
