"""The seed tutorials' data shapes: pre-rendered text, renamed columns, LLaMA-Factory's dataset_info.json registry
(file_name, formatting, columns, tags), and axolotl's context_qa.load_v2 rendering."""

import json

import pytest

from conftest import shared_data
from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError
from sqlft.data.formats import load_records
from sqlft.prompts.record import sql_record
from sqlft.prompts.templates import render


def test_pre_rendered_text_in_another_column(tmp_path):
    path = tmp_path / "rendered.jsonl"
    path.write_text(json.dumps({"content": "### Question: hi\n### Answer: hello"}) + "\n"
                    + json.dumps({"content": ""}) + "\n")
    records, problems = load_records(DatasetSpec(path=str(path), format="text", columns={"text": "content"}))
    assert [r.text for r in records] == ["### Question: hi\n### Answer: hello"] and records[0].task == "text"
    assert [p.reason for p in problems] == ["empty_field"]
    # auto: a text column with no turn markers is pre-rendered
    assert load_records(DatasetSpec(path=str(path), columns={"text": "content"}))[0] == records


def test_guanaco_llama2_1k_as_published_is_pre_rendered_text():
    path = shared_data("instruct", "guanaco", "guanaco-llama2-1k.train.parquet")
    records, problems = load_records(DatasetSpec(path=str(path), format="text"))
    assert len(records) == 1000 and not problems and records[0].text.startswith("<s>[INST]")


def test_registry_entry_alpaca():
    registry = shared_data("instruct", "llamafactory", "dataset_info.json")
    records, problems = load_records(DatasetSpec(path="identity", registry=str(registry.parent)))
    assert len(records) == 91 and not problems
    assert records[0].question == "hi" and "{{name}}" in records[0].answer


def test_registry_entry_sharegpt_with_columns_and_tags(tmp_path):
    glaive = shared_data("instruct", "sharegpt", "glaive_toolcall_en_demo.json")
    rows = json.loads(glaive.read_text())[:5]
    # the same records with OpenAI-style turns under another column: tags and columns say so
    renamed = [{"chats": [{"role": {"human": "user", "gpt": "assistant", "function_call": "tool_call",
                                    "observation": "tool_result"}[t["from"]], "text": t["value"]}
                          for t in row["conversations"]], "tools": row["tools"]} for row in rows]
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "glaive": {"file_name": str(glaive), "formatting": "sharegpt",
                   "columns": {"messages": "conversations", "tools": "tools"}},
        "renamed": {"file_name": "renamed.json", "formatting": "sharegpt",
                    "columns": {"messages": "chats", "tools": "tools"},
                    "tags": {"role_tag": "role", "content_tag": "text", "user_tag": "user",
                             "assistant_tag": "assistant", "function_tag": "tool_call",
                             "observation_tag": "tool_result"}},
        "ranked": {"file_name": "x.json", "ranking": True}}))
    plain, problems = load_records(DatasetSpec(path="glaive", registry=str(tmp_path / "dataset_info.json"),
                                               max_records=5))
    assert len(plain) == 5 and not problems and plain[0].meta.get("tools")
    tagged, problems = load_records(DatasetSpec(path="renamed", registry=str(tmp_path)))
    assert not problems and [r.turns for r in tagged] == [r.turns for r in plain]
    with pytest.raises(DataError, match="preference"):
        load_records(DatasetSpec(path="ranked", registry=str(tmp_path)))
    with pytest.raises(DataError, match="Did you mean 'glaive'"):
        load_records(DatasetSpec(path="glaiv", registry=str(tmp_path)))


def test_context_qa_renders_as_axolotl_load_v2():
    record = sql_record("CREATE TABLE t (a INT)", "How many rows?", "SELECT COUNT(*) FROM t")

    class Tok:
        eos_token = "</s>"
    rendered = render(record, "context_qa", Tok())
    # axolotl: prompt "Context: {context}\nQuestion: {question}\n", response "Answer: {answer}" + EOS (trained on)
    assert rendered.prompt == "Context: CREATE TABLE t (a INT)\nQuestion: How many rows?\n"
    assert rendered.completion == "Answer: SELECT COUNT(*) FROM t</s>"
