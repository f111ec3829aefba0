"""The README's examples as written: every `sqlft` command line in its bash blocks is read by that command's own
parser (a flag the command lacks fails here), every command's --help runs, the run folders it names are the ones
the shipped configs write, and the lines that run cheaply (info, config import, eval --predictions, eval compare)
run as written in a folder holding the files they name."""

import contextlib
import importlib
import io
import json
import re
import shlex
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from sqlft import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def command_lines() -> list[str]:
    """The `sqlft ...` lines of the README's bash blocks, as written (an environment prefix such as PGPASSFILE=...
    dropped, comments kept for shlex to cut)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.sub(r"^(\w+=\S+\s+)+", "", line.strip())
            if line.startswith("sqlft "):
                lines.append(line)
    return lines


LINES = command_lines()


def words(line: str) -> list[str]:
    return shlex.split(line, comments=True)[1:]  # after `sqlft`


def test_the_readme_has_command_lines_for_every_command():
    named = {words(line)[0] for line in LINES}
    assert len(LINES) > 30
    assert named <= set(cli.COMMANDS), named - set(cli.COMMANDS)
    assert {"train", "merge", "eval", "ask", "serve", "ui", "info", "config"} <= named


def parse(argv: list[str]) -> None:
    """argv read by the command's own parser, nothing run; argparse and pydantic exit on a flag they lack."""
    command, rest = argv[0], argv[1:]
    if command == "eval":
        from eval import run as eval_run
        if rest and rest[0] == "compare":
            assert len(rest) == 3, rest
            return
        eval_run.parse_args(rest)
    elif command == "serve":
        from serve.settings import Settings
        Settings.from_cli(rest)
    elif command == "train":
        from sqlft.config import load_config
        from sqlft.commands.train import parse_args
        args = parse_args(rest)
        load_config(ROOT / args.config, args.overrides)  # the overrides as written are valid keys and values
    else:
        module = importlib.import_module(cli.COMMANDS[command])
        if hasattr(module, "parse_args"):
            module.parse_args(rest)


@pytest.mark.parametrize("line", LINES)
def test_each_line_is_read_by_its_commands_parser(line, tmp_path, monkeypatch):
    argv = words(line)
    monkeypatch.chdir(tmp_path)
    for word in argv:  # files the line names as inputs: present (empty) here, as on the user's disk
        if re.fullmatch(r"[\w./-]+\.(txt|sql)", word) and not word.startswith("/"):
            Path(word).parent.mkdir(parents=True, exist_ok=True)
            Path(word).touch()
    try:
        parse(argv)
    except SystemExit as stop:
        if stop.code not in (0, None):
            pytest.fail(f"README line does not parse: {line}\n{stop}")


def test_run_folders_named_are_the_ones_the_configs_write():
    names = {yaml.safe_load(p.read_text()).get("name") for p in (ROOT / "configs").rglob("*.yaml")}
    outs = {Path(w[i + 1]).as_posix() for w in map(words, LINES) for i, x in enumerate(w[:-1]) if x == "--out"}
    wrong = []
    for path in re.findall(r"\bruns/[\w.-]+(?:/[\w.-]+)?", README):
        name = path.split("/")[1]
        if name in names or name in ("eval", "...") or any(path.startswith(out) for out in outs):
            continue
        wrong.append(path)
    assert not wrong, f"README names run folders no shipped config writes: {sorted(set(wrong))}"
    assert "runs/demo/" not in README


def run_line(line: str) -> str:
    """The line run as written through the `sqlft` dispatcher, in this process; its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(words(line))
    return out.getvalue()


def the_line(pattern: str) -> str:
    found = [line for line in LINES if re.search(pattern, line)]
    assert found, f"no README line matches {pattern!r}"
    return found[0]


def test_cheap_lines_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "cache (SQLFT_CACHE)" in run_line(the_line(r"^sqlft info\b"))

    # sqlft eval --predictions preds.jsonl --db-root DIR --dialect sqlite --out OUT
    (tmp_path / "DIR" / "concert").mkdir(parents=True)
    with sqlite3.connect(tmp_path / "DIR" / "concert" / "concert.sqlite") as con:
        con.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
        con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 30), (2, "Bob", 61)])
    (tmp_path / "preds.jsonl").write_text("".join(json.dumps(row) + "\n" for row in [
        {"id": "0", "db_id": "concert", "gold_sql": "SELECT count(*) FROM singer", "pred_sql": "SELECT count(id) FROM singer"},
        {"id": "1", "db_id": "concert", "gold_sql": "SELECT name FROM singer WHERE age > 60",
         "pred_sql": "SELECT name FROM singer"}]))
    line = the_line(r"^sqlft eval --predictions preds\.jsonl ")
    summary = run_line(line)
    assert "execution accuracy 50.0% (1/2)" in summary and "ran on concert.sqlite (sqlite, 2)" in summary
    report = json.loads((tmp_path / "OUT" / "report.json").read_text())
    assert report["counts"]["match"] == 1

    # sqlft eval compare runs/eval/a runs/eval/b: two eval folders side by side
    compare = the_line(r"^sqlft eval compare runs/eval/")
    for folder in words(compare)[2:]:
        shutil.copytree(tmp_path / "OUT", tmp_path / folder)
    assert "execution_accuracy" in run_line(compare)

    # sqlft config import axolotl.yml --out configs/mine.yaml
    seed = ROOT.parent / "shared" / "seeds" / "axolotl-know_sql-qlora.yml"
    if not seed.is_file():
        pytest.skip(f"{seed} is absent")
    shutil.copy(seed, tmp_path / "axolotl.yml")
    run_line(the_line(r"^sqlft config import axolotl\.yml"))
    from sqlft.config import load_config
    assert load_config(tmp_path / "configs" / "mine.yaml").lora.r == 32


def test_model_card_base_model_is_the_hub_id_the_run_started_from(tmp_path):
    from sqlft.config import Config
    from sqlft.training.merge import hub_id, model_card
    from sqlft.config.run_folder import RunFolder

    assert hub_id("embedded:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"
    assert hub_id(str(tmp_path)) is None  # a local folder with no record of where it came from
    config = Config(name="x")
    card = model_card(RunFolder(tmp_path), config, "float16")
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    config.model.name = str(tmp_path)
    assert "base_model" not in yaml.safe_load(model_card(RunFolder(tmp_path), config, "float16").split("---")[1])


def test_quickstart_finds_its_config_wherever_its_module_lives():
    """`sqlft quickstart` (the README's main command) reads the repository's configs/ through a path relative to its
    own module: a move of the module once pointed it at sqlft/configs/, which only a fresh-clone run showed."""
    from sqlft.commands.quickstart import DEFAULT_CONFIG
    from sqlft.config import load_config

    assert DEFAULT_CONFIG.is_file(), DEFAULT_CONFIG
    assert load_config(DEFAULT_CONFIG).model.name == "embedded:smollm2-135m-instruct"
