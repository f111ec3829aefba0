"""sqlft's own demo text-to-SQL set over the defog-data databases (see README.md here).

TRAIN_PATH and EVAL_PATH are know_sql-style JSONL files; `python -m sqlft.data.demo.build` regenerates them.
"""

from pathlib import Path

TRAIN_PATH = Path(__file__).parent / "train.jsonl"
EVAL_PATH = Path(__file__).parent / "eval.jsonl"

DEMO_PREFIX = "demo:"


def resolve_data_path(path: str) -> str:
    """`demo:train` / `demo:eval` name the demo sets shipped in sqlft/data/demo; other paths are returned as is."""
    if not path.startswith(DEMO_PREFIX):
        return path
    name = path[len(DEMO_PREFIX):]
    file = Path(__file__).parent / f"{name}.jsonl"
    if not file.is_file():
        available = sorted(p.stem for p in file.parent.glob("*.jsonl"))
        raise FileNotFoundError(f"no demo set '{path}'; available: {', '.join(DEMO_PREFIX + a for a in available)}")
    return str(file)
