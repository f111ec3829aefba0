"""LLaMA-Factory's dataset registry (data/dataset_info.json): a dataset named there becomes a plain DatasetSpec.

    data.train: [{path: alpaca_en_demo, registry: LLaMA-Factory/data/dataset_info.json}]   # or the data/ folder

An entry gives `file_name` (relative to the registry's folder) or `hf_hub_url`, `formatting` (alpaca, the default,
or sharegpt), `columns` (LLaMA-Factory's names -> the file's columns) and `tags` (sharegpt turn keys and speakers).
What sqlft cannot train on (preference/KTO data, images, other hubs) is refused with the entry named.
"""

import dataclasses
import difflib
import json
from pathlib import Path

from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError

# LLaMA-Factory column name -> sqlft field, per formatting.
COLUMNS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
               "system": "system", "tools": "tools"},
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"},
}
UNSUPPORTED_KEYS = {"ranking": "preference (ranking) data is for DPO/RM, not supervised fine-tuning",
                    "ms_hub_url": "ModelScope datasets are not supported; download the file and use file_name",
                    "om_hub_url": "Modelers datasets are not supported; download the file and use file_name",
                    "script_url": "dataset loading scripts are not supported; use file_name",
                    "cloud_file_name": "cloud files are not supported; download the file and use file_name"}
HUB_MIRRORS = ("ms_hub_url", "om_hub_url")
UNSUPPORTED_COLUMNS = ("images", "videos", "audios", "chosen", "rejected", "kto_tag")


def registry_file(registry: str) -> Path:
    path = Path(registry).expanduser()
    file = path / "dataset_info.json" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"LLaMA-Factory registry not found: {registry} (give dataset_info.json or its folder)")
    return file


def read_registry(registry: str) -> dict:
    file = registry_file(registry)
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{file} is not valid JSON: {err.msg} at line {err.lineno}") from None
    if not isinstance(info, dict):
        raise DataError(f"{file}: expected an object of dataset entries, found {type(info).__name__}")
    return info


def from_registry(spec: DatasetSpec) -> DatasetSpec:
    """The spec of the registry entry named by spec.path: file, format, columns and tags filled in."""
    file = registry_file(spec.registry)
    info = read_registry(spec.registry)
    entry = info.get(spec.path)
    if not isinstance(entry, dict):
        close = difflib.get_close_matches(spec.path, list(info), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"dataset '{spec.path}' is not in {file}.{hint} It has: {', '.join(sorted(info))}")
    where = f"{file} entry '{spec.path}'"
    for key, why in UNSUPPORTED_KEYS.items():
        # LLaMA-Factory reads ms_hub_url / om_hub_url only when told to use those hubs (USE_MODELSCOPE_HUB,
        # USE_OPENMIND_HUB); an entry that also has a file or a Hugging Face id is read from that, as there.
        if entry.get(key) and not (key in HUB_MIRRORS and (entry.get("file_name") or entry.get("hf_hub_url"))):
            raise DataError(f"{where}: {why}")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in COLUMNS:
        raise DataError(f"{where}: formatting '{formatting}' is not supported; use alpaca or sharegpt")
    if "file_name" in entry:
        path, split = str(file.parent / entry["file_name"]), spec.split
    elif "hf_hub_url" in entry:
        path, split = entry["hf_hub_url"], entry.get("split", spec.split)
    else:
        raise DataError(f"{where} has neither file_name nor hf_hub_url")
    columns = {}
    for theirs_name, column in (entry.get("columns") or {}).items():
        if theirs_name in UNSUPPORTED_COLUMNS:
            raise DataError(f"{where}: column '{theirs_name}' ({column}) is not supported (text-only supervised "
                            "fine-tuning)")
        ours = COLUMNS[formatting].get(theirs_name)
        if ours is None:
            raise DataError(f"{where}: unknown {formatting} column '{theirs_name}'; LLaMA-Factory's are "
                            f"{', '.join(COLUMNS[formatting])}")
        columns[ours] = column
    # Alpaca records join their input to the instruction as LLaMA-Factory does (sqlft.data.formats, llamafactory_alpaca).
    fmt = "llamafactory_alpaca" if formatting == "alpaca" else formatting
    return dataclasses.replace(spec, path=path, split=split, format=fmt, registry="",
                               columns={**columns, **spec.columns}, tags={**(entry.get("tags") or {}), **spec.tags})


def download_hint(spec: DatasetSpec) -> str | None:
    """For a registry entry that names a hub dataset which cannot be loaded here: the one file to fetch and the
    file_name to set in the entry (None for an entry that names a local file: its own error says what is wrong)."""
    file = registry_file(spec.registry)
    entry = read_registry(spec.registry).get(spec.path) or {}
    url = entry.get("hf_hub_url")
    if not url or entry.get("file_name"):
        return None
    split = entry.get("split", spec.split)
    local = f"{spec.path}.json"
    return (f"{file} entry '{spec.path}' is the hub dataset {url}, and it could not be loaded from here (no hub "
            "access, or a wrong id). "
            f"Fetch it on a machine that is online: python -c \"import datasets; datasets.load_dataset('{url}', "
            f"split='{split}').to_json('{local}', lines=False, force_ascii=False)\", put {local} in {file.parent}, "
            f"and set \"file_name\": \"{local}\" in that entry (LLaMA-Factory reads the file the same way)")
