"""sqlft's own demo text-to-SQL set over the defog-data databases (see README.md here).

TRAIN_PATH and EVAL_PATH are know_sql-style JSONL files; `python -m sqlft.demo_data.build` regenerates them.
"""

from pathlib import Path

TRAIN_PATH = Path(__file__).parent / "train.jsonl"
EVAL_PATH = Path(__file__).parent / "eval.jsonl"
