"""Yuan 2.0 end to end on a tiny local model with its own code (auto_map) and Yuan's tokenizer setup (eos <eod>,
added special tokens): the template is LLaMA-Factory's `yuan`, trust_remote_code reaches the tokenizer, training,
merge, evaluation and `sqlft ask`."""

import json

import pytest

from sqlft.config import ConfigError, load_config
from sqlft.commands.config_import import YUAN_ADDED_TOKENS
from sqlft.training.dataset import encode
from sqlft.model.loading import load_tokenizer
from sqlft.prompts.record import Record, Turn, sql_record
from sqlft.prompts.templates import render

YUAN_TOKENS = [f"model.added_tokens=[{', '.join(YUAN_ADDED_TOKENS)}]", "model.special_tokens={eos_token: <eod>}"]

CHAT = Record(turns=[Turn("user", "Hi there"), Turn("assistant", "Hello!"), Turn("user", "Name a colour."),
                     Turn("assistant", "Blue.<eod>")], system="Be brief.", task="chat")


def test_yuan_template_is_llamafactorys():
    # LLaMA-Factory (src/llamafactory/data/template.py, name="yuan"): system as is, user "{{content}}" + <sep>,
    # assistant "{{content}}<eod>\n"; the <eod> the data already has is not doubled.
    rendered = render(CHAT, "yuan")
    assert rendered.prompt == "Be brief.Hi there<sep>Hello!<eod>\nName a colour.<sep>"
    assert rendered.completion == "Blue.<eod>\n"
    single = render(Record(turns=[Turn("user", "q"), Turn("assistant", "a")], task="chat"), "yuan")
    assert (single.prompt, single.completion) == ("q<sep>", "a<eod>\n")


def test_yuan_tokenizer_setup(tiny_yuan_dir):
    with pytest.raises(ConfigError, match="trust_remote_code=true"):
        load_tokenizer(str(tiny_yuan_dir))
    config = load_config(None, [f"model.name={tiny_yuan_dir}", "model.trust_remote_code=true", *YUAN_TOKENS])
    tokenizer = load_tokenizer(config.model.name, config.model)
    assert type(tokenizer).__name__ == "TinyYuanTokenizer", "the model's own tokenizer class ran"
    assert tokenizer.eos_token == "<eod>"
    example = encode(CHAT, "yuan", tokenizer, loss="assistant_turns")
    sep, eod = tokenizer.convert_tokens_to_ids(["<sep>", "<eod>"])
    assert example.input_ids.count(sep) == 2 and example.input_ids.count(eod) == 2, "one token each, no doubles"
    assert eod == tokenizer.eos_token_id


def test_custom_code_model_trains_merges_evaluates_and_answers(tiny_yuan_dir, sql_jsonl, tmp_path, capsys):
    from eval import run as eval_run
    from sqlft.commands.ask import main as ask_main
    from sqlft.training.merge import merge
    from sqlft.commands.train import main as train_main

    overrides = [f"model.name={tiny_yuan_dir}", "model.method=lora", "model.dtype=float32", *YUAN_TOKENS,
                 f"data.train=[{{path: {sql_jsonl}}}]", "data.template=yuan", "data.max_length=128",
                 "data.val_fraction=0.25", "train.max_steps=2", "train.batch_size=2", "train.save_steps=2",
                 "train.eval_steps=0", "train.report_to=none", "train.precision=fp32", "train.warmup_ratio=0",
                 "train.gradient_checkpointing=false"]
    with pytest.raises(SystemExit, match="model.trust_remote_code=true"):
        train_main([str(_config_file(tmp_path)), *overrides, f"train.output_dir={tmp_path / 'refused'}"])
    run = train_main([str(_config_file(tmp_path)), *overrides, "model.trust_remote_code=true",
                      f"train.output_dir={tmp_path / 'run'}"])
    saved = json.loads((run / "adapter" / "tokenizer_config.json").read_text())
    assert saved["eos_token"] == "<eod>"

    merged = merge(run, dtype="float32")  # verifies merged == adapter on the sample prompts
    assert (merged / "modeling_tinyyuan.py").is_file(), "the model's code travels with the merged folder"
    assert "trust_remote_code: true" in (merged / "sqlft.yaml").read_text()

    report = eval_run.run(eval_run.parse_args([str(merged), "--data", str(sql_jsonl), "--limit", "2",
                                               "--max-new-tokens", "8", "--instances", "1",
                                               "--out", str(tmp_path / "eval")]))
    assert report["counts"] and (tmp_path / "eval" / "report.json").is_file()

    ask_main([str(merged), "How many heads?", "--schema", "CREATE TABLE head (age INT)", "--max-new-tokens", "6"])
    ask_main([str(merged), "Say hi.", "--max-new-tokens", "6", "--temperature", "0.8", "--top-p", "0.9",
              "--show-prompt"])
    out = capsys.readouterr().out
    assert "--- prompt (yuan) ---\nSay hi.<sep>\n--- answer ---" in out


def _config_file(tmp_path):
    path = tmp_path / "yuan.yaml"
    path.write_text("name: tiny-yuan\n")
    return path
