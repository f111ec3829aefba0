"""The run folder has one home (sqlft.config.run_folder): later stages read a run back as the typed config, a folder that is
not a run is a clear error, and no other module spells the layout's file names."""

import ast
from pathlib import Path

import pytest
import yaml

from sqlft.config import ConfigError, load_config, save_config
from sqlft.config.run_folder import NotARunError, RunFolder, open_run, read_config

ROOT = Path(__file__).resolve().parent.parent


def make_run(folder: Path, *overrides: str, weights: str = "adapter") -> RunFolder:
    """A run folder as `sqlft train` leaves it, as far as reading it back goes: config.yaml and the weights folder."""
    run = RunFolder(folder)
    (folder / weights).mkdir(parents=True)
    save_config(load_config(None, ["data.train=[{path: demo:train}]", *overrides]), run.config_file)
    return run


def test_a_run_reads_back_as_the_config_it_was_trained_with(tmp_path):
    run = make_run(tmp_path / "run", "name=mine", "data.template=llama3", "data.schema_format=compact",
                   "train.precision=fp32", "lora.r=8")
    config = open_run(run.path).config()
    assert (config.name, config.data.template, config.data.schema_format) == ("mine", "llama3", "compact")
    assert (config.train.precision, config.lora.r, config.data.sql_dialect) == ("fp32", 8, "duckdb")
    assert config.data.train[0].path == "demo:train"  # typed: DatasetSpec, not a dict
    assert read_config(run.path) == config


def test_a_full_fine_tune_is_a_run_and_names_its_weights(tmp_path):
    run = make_run(tmp_path / "run", "model.method=full", weights="model")
    assert run.is_run() and not run.has_adapter
    assert run.weights("full") == run.model and run.weights("qlora") == run.adapter


@pytest.mark.parametrize("what, words", [
    ("missing", "does not exist"), ("empty", "has no config.yaml"), ("no weights", "has neither adapter/ nor model/")])
def test_a_folder_that_is_not_a_run_says_what_a_run_holds(tmp_path, what, words):
    folder = tmp_path / "run"
    if what != "missing":
        folder.mkdir()
    if what == "no weights":
        save_config(load_config(None, []), folder / "config.yaml")
    with pytest.raises(NotARunError) as err:
        open_run(folder)
    assert words in str(err.value) and "sqlft train" in str(err.value)
    if what != "no weights":
        with pytest.raises(NotARunError, match="has no config.yaml"):
            read_config(folder)


def test_an_older_run_reads_back_with_what_it_recorded(tmp_path, capsys):
    """A run made before an option was removed (generation.guided) or added (data.sql_dialect) still reads: the
    removed key is named and ignored, the added one takes what the run's data implies."""
    run = make_run(tmp_path / "run", "data.train=[{path: spider.jsonl}]", "data.sql_dialect=postgres")
    raw = yaml.safe_load(run.config_file.read_text())
    raw["generation"]["guided"] = True
    del raw["data"]["sql_dialect"]
    run.config_file.write_text(yaml.safe_dump(raw))
    config = run.config()
    assert config.data.sql_dialect == "sqlite"  # know_sql/Spider data: SQLite
    assert "generation.guided" in capsys.readouterr().err


def test_a_bad_value_in_a_run_names_the_file(tmp_path):
    run = make_run(tmp_path / "run")
    raw = yaml.safe_load(run.config_file.read_text())
    raw["data"]["template"] = "chatmll"
    run.config_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"config\.yaml.*\n.*'data.template' is 'chatmll'. Did you mean 'chatml'"):
        run.config()


def test_sample_prompts_and_metrics_round_trip(tmp_path):
    run = make_run(tmp_path / "run")
    assert run.read_sample_prompts() == [] and run.read_metrics() == {} and not run.trained
    run.write_sample_prompts(["a prompt"])
    run.metrics.write_text('{"global_step": 3}')
    assert run.read_sample_prompts() == ["a prompt"] and run.read_metrics() == {"global_step": 3} and run.trained


def test_a_continued_adapter_must_share_the_runs_prompt_settings(tmp_path):
    """GRPO (or SFT) continuing an SFT run reads that run back typed: a different template is refused."""
    from sqlft.model.loading import adapter_dir

    run = make_run(tmp_path / "sft", "data.template=chatml")
    (run.adapter / "adapter_config.json").write_text("{}")
    ours = load_config(None, ["data.train=[{path: demo:train}]", f"model.adapter={run.path}", "model.method=lora"])
    assert adapter_dir(ours) == run.adapter
    ours.data.template = "llama3"
    with pytest.raises(ConfigError, match="data.template='chatml' \\(this config: 'llama3'\\)"):
        adapter_dir(ours)


def test_continuing_a_full_fine_tuning_run_says_to_start_from_its_model(tmp_path):
    """The Spider recipe fine-tunes all weights (model/, no adapter/): naming it as model.adapter, as the GRPO config
    once did for the LoRA recipe, says what to set instead."""
    from sqlft.model.loading import adapter_dir

    run = make_run(tmp_path / "sft", "model.method=full", weights="model")
    assert run.model.is_dir() and not run.has_adapter
    ours = load_config(None, ["data.train=[{path: demo:train}]", f"model.adapter={run.path}", "model.method=lora"])
    with pytest.raises(ConfigError, match=f"fine-tuned all weights.*set model.name={run.model} and leave "
                                          "model.adapter empty"):
        adapter_dir(ours)



def test_starting_from_a_full_fine_tuning_runs_model_must_share_its_prompt_settings(tmp_path):
    """GRPO after the Spider recipe names the run's model/ as model.name: that run's prompts are checked as a
    continued adapter's are (its base model is not: model.name is the run's own weights now)."""
    from sqlft.commands.train import train
    from sqlft.model.loading import check_training_start

    run = make_run(tmp_path / "sft", "model.method=full", "data.template=chatml", "data.schema_format=compact",
                   weights="model")
    ours = load_config(None, ["data.train=[{path: demo:train}]", f"model.name={run.model}", "model.method=lora",
                              "data.template=chatml", "data.schema_format=compact"])
    check_training_start(ours)  # the same prompts: nothing to say
    ours.data.template, ours.data.system = "llama3", "You write SQL."
    with pytest.raises(ConfigError) as err:
        train(ours)  # refused before anything loads (there are no weights in this model/ to load)
    assert f"model.name={run.model}: that run was trained with" in str(err.value)
    assert "data.template='chatml' (this config: 'llama3')" in str(err.value)
    assert "data.system=" in str(err.value) and "model.name=" not in str(err.value).split("trained with")[1]

    plain = tmp_path / "plain" / "model"  # a folder called model/ that is no run: an ordinary base model
    plain.mkdir(parents=True)
    check_training_start(load_config(None, ["data.train=[{path: demo:train}]", f"model.name={plain}"]))

LAYOUT_NAMES = {"config.yaml", "sample_prompts.json", "metrics.json", "data_report.json", "validation.jsonl",
                "checkpoints", "sqlft.yaml", "loss.png", "quickstart.json"}


def test_only_the_run_folder_module_spells_the_layout():
    """One home: any other module that writes `run_dir / "metrics.json"` knows the layout a second time."""
    spelt = []
    for package in ("sqlft", "eval", "serve", "ui"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "run_folder.py":
                continue
            spelt += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
                      for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES]
    assert not spelt, f"use sqlft.config.run_folder.RunFolder instead of spelling the run folder's files: {spelt}"


def test_merge_refuses_a_folder_that_is_not_a_run_with_an_adapter(tmp_path):
    from sqlft.training.merge import main

    with pytest.raises(SystemExit, match="sqlft merge: .* is not a training run folder: it has no config.yaml"):
        main([str(tmp_path)])
    run = make_run(tmp_path / "full", "model.method=full", weights="model")
    with pytest.raises(SystemExit, match="is a full fine-tune: .* no adapter to merge"):
        main([str(run.path)])
