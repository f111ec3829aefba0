"""`sqlft ask`: several questions (arguments, a file, stdin, a terminal prompt) on one model load, decoded with the
run's generation settings. A real (tiny, random) Llama in a real run folder; its answers are noise, their length
is what the settings decide."""

import io
import json
import shutil

import pytest
import yaml

from sqlft.commands import ask
from sqlft.config import Config, DatasetSpec, save_config
from sqlft.model.generate import InferenceModel
from sqlft.config.run_folder import MERGED_META


@pytest.fixture
def full_run(tmp_path, tiny_model_dir):
    """A full fine-tune's run folder over the tiny model, whose config says generation.max_new_tokens=3 and
    samples (greedy, the random model's favourite token is its stop token: every answer would be empty)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    config = Config(name="tiny")
    config.model.name, config.model.method = str(tiny_model_dir), "full"
    config.data.train = [DatasetSpec(path="x.jsonl")]
    config.generation.max_new_tokens, config.generation.do_sample = 3, True
    save_config(config, run / "config.yaml")
    return run


class Loads(list):
    """The references of the real model loads, and the new-token counts of every answer generated."""
    new_tokens: list[int]


@pytest.fixture
def loads(monkeypatch):
    calls = Loads()
    calls.new_tokens = []
    real = InferenceModel.load.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0])
        model = real(cls, *args, **kwargs)
        generate = model.generate

        def recording(*a, **k):
            out = generate(*a, **k)
            calls.new_tokens += [g.new_tokens for g in out]
            return out
        model.generate = recording
        return model
    monkeypatch.setattr(InferenceModel, "load", classmethod(counting))
    return calls


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_run_generation_read_from_run_and_merged_folder(full_run, tmp_path):
    assert ask.run_generation(str(full_run)).max_new_tokens == 3
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / MERGED_META).write_text(yaml.safe_dump({"base_model": "x", "template": "chatml", "system": "",
                                                      "generation": {"max_new_tokens": 7, "do_sample": True,
                                                                     "temperature": 0.5, "unknown_later": 1}}))
    gen = ask.run_generation(str(merged))
    assert (gen.max_new_tokens, gen.do_sample, gen.temperature) == (7, True, 0.5)
    # An older merged folder without the section reads the run it was merged from.
    (merged / MERGED_META).write_text(yaml.safe_dump({"base_model": "x", "template": "chatml", "system": "",
                                                      "run": str(full_run)}))
    assert ask.run_generation(str(merged)).max_new_tokens == 3
    assert ask.run_generation("embedded:smollm2-135m-instruct").max_new_tokens == 128
    # Flags go over the run's settings; temperature 0 is greedy whatever the run samples with.
    over = ask.generation(max_new_tokens=9, temperature=0.0, base=gen)
    assert (over.max_new_tokens, over.do_sample, gen.max_new_tokens) == (9, False, 7)


def test_questions_on_stdin_one_load_run_budget(full_run, loads, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is SQL?\n\n# a comment\nName a table.\nCount rows.\n"))
    answers = ask.main([str(full_run), "--jsonl"])
    assert loads == [str(full_run)], "one model load for every question"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["question"] for line in lines] == ["What is SQL?", "Name a table.", "Count rows."]
    assert [line["answer"] for line in lines] == answers
    # generation.max_new_tokens=3 and sampling from the run's config.yaml
    assert loads.new_tokens == [3, 3, 3] and all(answers), answers


def test_questions_file_and_flag_over_run_setting(full_run, loads, tmp_path, capsys):
    questions = tmp_path / "questions.txt"
    questions.write_text("first question\nsecond question\n")
    answers = ask.main([str(full_run), "--questions", str(questions), "--max-new-tokens", "24"])
    out = capsys.readouterr().out
    assert len(loads) == 1 and len(answers) == 2
    assert out.startswith("-- first question\n") and "-- second question\n" in out
    # A random model sampling rarely stops on its own: with 24 new tokens allowed, answers are longer than 3.
    assert max(loads.new_tokens) > 3 and all(n <= 24 for n in loads.new_tokens), loads.new_tokens


def test_interactive_prompt_on_a_terminal(full_run, loads, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", Terminal("How many rows?\nWhich table?\n\nnever asked\n"))
    answers = ask.main([str(full_run), "--schema", "CREATE TABLE t (id INT)"])
    assert len(answers) == 2 and len(loads) == 1, "stops at the empty line, one load"
    captured = capsys.readouterr()
    assert ask.PROMPT in captured.out and "loaded" in captured.err


def test_bad_questions_are_refused_before_the_model_loads(full_run, loads, monkeypatch, tmp_path):
    with pytest.raises(SystemExit):
        ask.main([str(full_run), "--questions", str(tmp_path / "missing.txt")])
    monkeypatch.setattr("sys.stdin", io.StringIO("\n# only a comment\n"))
    with pytest.raises(SystemExit, match="no questions"):
        ask.main([str(full_run)])
    assert loads == []


@pytest.mark.slow
def test_embedded_model_answers_a_file_of_questions_on_one_load(tmp_path, loads, capsys):
    """The real embedded SmolLM2: two questions from a file, one load, each answer within the budget."""
    questions = tmp_path / "q.txt"
    questions.write_text("How many singers are there?\nList the names of singers from France.\n")
    answers = ask.main(["embedded:smollm2-135m-instruct", "--schema", "CREATE TABLE singer (id INT, name TEXT, "
                        "country TEXT)", "--questions", str(questions), "--max-new-tokens", "12", "--jsonl"])
    assert len(loads) == 1 and len(answers) == 2 and all(answers)
    assert all(0 < n <= 12 for n in loads.new_tokens)
    assert [json.loads(line)["question"] for line in capsys.readouterr().out.splitlines()] == [
        "How many singers are there?", "List the names of singers from France."]
