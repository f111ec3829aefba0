"""The run folder: what `sqlft train` writes and every later stage reads back (merge, ask, eval, serve, a GRPO stage
that continues an SFT run). The one module that knows its layout: the others ask it for paths, and read a run's
settings back as the typed config (sqlft.config), never as a raw YAML dict.

    RUN/                      train.output_dir (default runs/{name})
      config.yaml             the resolved Config: `auto` precision, max_length and SQL dialect made concrete
      data_report.json        what the data checks found, the mixture, the GRPO reward's dropped records
      sample_prompts.json     a few validation prompts: `sqlft merge` checks merged == adapter on them
      validation.jsonl        the held-out SQL records, never trained on: score them with `sqlft eval`
      adapter/ or model/      the LoRA adapter (qlora, lora) or all weights (full), with the tokenizer
      checkpoints/            checkpoint-N/ folders: `--resume` continues from the newest complete one
      logs/                   TensorBoard
      metrics.json, loss.png  training metrics and the loss curve
      merged/                 `sqlft merge`: a plain 16-bit model folder with sqlft.yaml (MERGED_META) in it
      eval-base/, eval-merged/, quickstart.json    `sqlft quickstart`'s evaluations and summary
"""

import dataclasses
import json
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from sqlft.core.errors import SqlftError
from sqlft.config import Config, ConfigError, config_from_raw

CONFIG = "config.yaml"
MERGED_META = "sqlft.yaml"  # in a merged folder: base model, template, system text, schema format, dialect, dtype


class NotARunError(SqlftError, FileNotFoundError):
    """A folder given as a run that is none: the message says what a run folder holds."""


def _inside(name: str) -> property:
    """A path inside the run folder (a property of RunFolder)."""
    def path(self: "RunFolder") -> Path:
        return self.path / name
    return property(path, doc=f"RUN/{name}")


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder (nothing is read or created by building one)."""
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    config_file = _inside(CONFIG)
    adapter = _inside("adapter")
    model = _inside("model")  # a full fine-tune's weights
    checkpoints = _inside("checkpoints")
    logs = _inside("logs")
    metrics = _inside("metrics.json")
    loss_plot = _inside("loss.png")
    data_report = _inside("data_report.json")
    sample_prompts = _inside("sample_prompts.json")
    validation = _inside("validation.jsonl")
    merged = _inside("merged")
    quickstart = _inside("quickstart.json")

    def weights(self, method: str) -> Path:
        """Where training writes the result of model.method: model/ for full fine-tuning, adapter/ otherwise."""
        return self.model if method == "full" else self.adapter

    def eval_dir(self, label: str) -> Path:
        return self.path / f"eval-{label}"

    def is_run(self) -> bool:
        """A trained (or training) run: its config and an adapter/ or model/ folder."""
        return self.config_file.is_file() and (self.adapter.is_dir() or self.model.is_dir())

    @property
    def has_adapter(self) -> bool:
        return self.adapter.is_dir()

    @property
    def trained(self) -> bool:
        """Training finished: metrics.json is written last."""
        return self.metrics.is_file()

    def config(self) -> Config:
        return read_config(self.path)

    def read_metrics(self) -> dict:
        """metrics.json, {} while the run has none."""
        return json.loads(self.metrics.read_text()) if self.metrics.is_file() else {}

    def read_sample_prompts(self) -> list[str]:
        return json.loads(self.sample_prompts.read_text()) if self.sample_prompts.is_file() else []

    def write_sample_prompts(self, prompts: list[str]) -> None:
        self.sample_prompts.write_text(json.dumps(prompts, indent=2))

    def write_validation(self, rows: list[dict]) -> None:
        with open(self.validation, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


def open_run(path: str | Path) -> RunFolder:
    """The run folder at `path`; NotARunError, saying what a run holds, when it is not one."""
    run = RunFolder(Path(path))
    if not run.is_run():
        what = "does not exist" if not run.path.exists() else (
            f"has no {CONFIG}" if not run.config_file.is_file() else "has neither adapter/ nor model/")
        raise NotARunError(f"{run.path} is not a training run folder: it {what}. A run folder is what `sqlft train` "
                           f"writes to train.output_dir ({CONFIG} and adapter/ or, for model.method=full, model/)")
    return run


def read_config(path: str | Path) -> Config:
    """A run folder's config.yaml as the typed Config. Keys this version no longer has (a run trained before an
    option was removed) are left out with a note; a value this version rejects is a ConfigError naming the file."""
    config_file = RunFolder(Path(path)).config_file
    if not config_file.is_file():
        raise NotARunError(f"{config_file.parent} is not a training run folder: it has no {CONFIG} (written by "
                           "`sqlft train` into train.output_dir)")
    try:
        raw = yaml.safe_load(config_file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_file} is not valid YAML: {err}") from None
    dropped: list[str] = []
    known = _known_keys(Config, raw, "", dropped)
    if isinstance(known, dict) and isinstance(known.setdefault("data", {}), dict):
        # A run trained before schema formats had versions: its prompts were written by version 1 (sqlft.sql.schema).
        known["data"].setdefault("schema_format_version", 1)
    if dropped:
        print(f"[sqlft] {config_file}: ignoring settings this sqlft version does not have: {', '.join(dropped)}",
              file=sys.stderr)
    return config_from_raw(known, where=f" in {config_file}")


def _known_keys(cls, raw, prefix: str, dropped: list[str]):
    """`raw` with the keys that `cls` (a config dataclass) does not have removed, recursively; their dotted names go
    to `dropped`."""
    if not isinstance(raw, dict):
        return raw
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kept = {}
    for key, value in raw.items():
        if key not in fields:
            dropped.append(prefix + str(key))
        elif dataclasses.is_dataclass(hints[key]):
            kept[key] = _known_keys(hints[key], value, f"{prefix}{key}.", dropped)
        else:
            kept[key] = value
    return kept


def read_merged_meta(folder: str | Path) -> dict | None:
    """The sqlft.yaml of a merged folder, None for a folder without one."""
    file = Path(folder) / MERGED_META
    return yaml.safe_load(file.read_text()) if file.is_file() else None


def write_merged_meta(folder: str | Path, meta: dict) -> None:
    (Path(folder) / MERGED_META).write_text(yaml.safe_dump(meta, sort_keys=False))
