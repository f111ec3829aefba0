"""The five seed tutorials as written: their own text is the reference (issue 23).

tests/fixtures/tutorials/ holds, per tutorial, what was copied from its text in ../shared/seeds/tutorials/ (the
source file is named in each): its prompt strings, its example record, every hyperparameter it sets, and for the
axolotl and LLaMA-Factory ones the config file / command line itself. The tests
- check that every copied string is in the tutorial's text (when ../shared is beside the checkout);
- render the tutorial's example through sqlft's loaders, templates and tokenization and compare the bytes and the
  token ids, with which tokens have loss, to what the tutorial's own code gives (its code is re-run here, on a
  stand-in tokenizer with the Llama special tokens, since no hub model can be loaded);
- check every value the tutorial sets against the shipped seed config (configs/seeds/); a GPU-only value stays
  the tutorial's and its CPU refusal is checked, a W&B or hub setting likewise;
- regenerate the per-tutorial tables of configs/seeds/README.md and compare them with the file, so that the README
  cannot drift from the fixtures and the configs:  python tests/test_tutorials.py --write
"""

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tutorials"
SEEDS = ROOT / "configs" / "seeds"
README = SEEDS / "README.md"
TUTORIALS_DIR = Path(os.environ.get("SQLFT_SHARED_DATA") or ROOT.parent / "shared" / "data").parent / "seeds" / "tutorials"
BEGIN, END = "<!-- BEGIN tutorial tables: python tests/test_tutorials.py --write -->", "<!-- END tutorial tables -->"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


OVH, MLABONNE, LLAMA3 = "000_ovh_dolly.json", "001_mlabonne_guanaco.json", "002_llama3_openhermes.json"
YUAN, AXOLOTL = "003_llamafactory_yuan2.json", "004_axolotl_know_sql.json"
ALL = (OVH, MLABONNE, LLAMA3, YUAN, AXOLOTL)
HAND_WRITTEN = (OVH, MLABONNE, LLAMA3)  # seed configs written from the tutorial's code; the others are imported


def tutorial_text(data: dict) -> str:
    path = TUTORIALS_DIR / Path(data["source"]).name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path.read_text(encoding="utf-8")


def seed_config(data: dict, overrides=()):
    from sqlft.config import load_config
    return load_config(SEEDS / data["seed"], list(overrides))


def config_value(config, key: str):
    """A dotted key of a config; data.train[0].path indexes a list; merge.dtype is what `sqlft merge` picks."""
    if key == "merge.dtype":
        from sqlft.training.merge import merge_dtype
        return merge_dtype(config, config.model.name)
    node = config
    for part in key.split("."):
        name, _, index = part.partition("[")
        node = getattr(node, name)
        if index:
            node = node[int(index.rstrip("]"))]
    return node


def stand_in_tokenizer(bos: str | None, specials: list[str], embedded_model_dir):
    """The embedded SmolLM2 vocabulary with a tutorial model's special tokens, adding BOS (when given) the way the
    Llama tokenizers do: their structure (BOS handling, specials matched in text) without their weights."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    base = AutoTokenizer.from_pretrained(embedded_model_dir)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=copy.deepcopy(base.backend_tokenizer))
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    if bos:
        tokenizer.add_special_tokens({"bos_token": bos})
        bos_id = tokenizer.convert_tokens_to_ids(bos)
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                                        special_tokens=[(bos, bos_id)])
    return tokenizer


@pytest.fixture(scope="module")
def llama2_tokenizer(embedded_model_dir):
    tokenizer = stand_in_tokenizer("<s>", ["</s>", "<unk>"], embedded_model_dir)
    tokenizer.add_special_tokens({"eos_token": "</s>", "unk_token": "<unk>"})
    tokenizer.pad_token = tokenizer.eos_token  # both tutorials: "Needed for LLaMA tokenizer"
    return tokenizer


def collator_labels(tokenizer, ids: list[int]) -> list[int]:
    """DataCollatorForLanguageModeling(tokenizer, mlm=False) as the OVH and mlabonne tutorials train with it."""
    from transformers import DataCollatorForLanguageModeling
    batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)([{"input_ids": ids}])
    return batch["labels"][0].tolist()


def load_one(tmp_path, rows, **spec):
    from sqlft.config import DatasetSpec
    from sqlft.data.formats import load_records

    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    records, problems = load_records(DatasetSpec(path=str(path), **spec))
    assert not problems
    return records


# ---------------------------------------------------------------- the fixtures are the tutorials' text


@pytest.mark.parametrize("name", ALL)
def test_fixture_strings_are_copied_from_the_tutorial(name):
    data = fixture(name)
    text = tutorial_text(data)
    quotes = data.get("quotes", []) + data.get("code_quotes", [])
    quotes += [row["quote"] for row in data.get("settings", []) + data.get("extra", []) if row.get("quote")]
    missing = [q for q in quotes if q not in text]
    assert quotes and not missing, f"not in {data['source']}: {missing[:3]}"
    for key in ("command_file", "config_file"):  # the copies of its config file / command line, header line aside
        if key in data:
            copied = (FIXTURES / data[key]).read_text(encoding="utf-8").split("\n", 1)
            assert copied[0].startswith("# Copied verbatim from ") and data["source"] in copied[0]
            assert copied[1].strip() in text


# ---------------------------------------------------------------- OVH (000)


def ovh_create_prompt_formats(sample: dict, parts: dict) -> str:
    """The tutorial's create_prompt_formats, as written there."""
    blurb = f"{parts['INTRO_BLURB']}"
    instruction = f"{parts['INSTRUCTION_KEY']}\n{sample['instruction']}"
    input_context = f"{parts['INPUT_KEY']}\n{sample['context']}" if sample["context"] else None
    response = f"{parts['RESPONSE_KEY']}\n{sample['response']}"
    end = f"{parts['END_KEY']}"
    return "\n\n".join(part for part in [blurb, instruction, input_context, response, end] if part)


def test_ovh_bytes_and_tokens(tmp_path, llama2_tokenizer):
    from sqlft.training.dataset import encode
    from sqlft.prompts.templates import render

    data, config = fixture(OVH), seed_config(fixture(OVH))
    example = data["example"]
    with_context = {**example["record"], "context": "Mountains are tall; the sea is wide."}
    assert ovh_create_prompt_formats(example["record"], data["prompt_parts"]) == example["text"]
    for sample in (example["record"], with_context):
        (record,) = load_one(tmp_path, [sample], format="dolly")
        rendered = render(record, config.data.template, llama2_tokenizer)
        expected = ovh_create_prompt_formats(sample, data["prompt_parts"])
        assert rendered.prompt + rendered.completion == expected, "byte for byte, no EOS after ### End"
        # tokenizer(text) adds BOS and no EOS; the collator masks only padding (pad = eos, absent here)
        ids = llama2_tokenizer(expected)["input_ids"]
        example_ids = encode(record, config.data.template, llama2_tokenizer, loss=config.data.loss)
        assert example_ids.input_ids == ids and ids[0] == llama2_tokenizer.bos_token_id
        assert example_ids.completion_mask == [int(label != -100) for label in collator_labels(llama2_tokenizer, ids)]


# ---------------------------------------------------------------- mlabonne (001)


def test_mlabonne_bytes_and_tokens(tmp_path, llama2_tokenizer):
    from sqlft.training.dataset import encode
    from sqlft.prompts.record import Record, Turn
    from sqlft.prompts.templates import render_prompt

    data, config = fixture(MLABONNE), seed_config(fixture(MLABONNE))
    text = data["example"]["text"]
    (record,) = load_one(tmp_path, [{"text": text}], format=config.data.train[0].format)
    assert record.text == text, "the pre-rendered text is trained as it is"
    ours = encode(record, config.data.template, llama2_tokenizer, loss=config.data.loss)
    # the tutorial: SFTTrainer tokenizes the text with special tokens (a BOS before the text's own <s>) and its
    # collator turns every pad = eos = </s> into -100
    theirs = llama2_tokenizer(text)["input_ids"]
    labels = collator_labels(llama2_tokenizer, theirs)
    bos, eos = llama2_tokenizer.bos_token_id, llama2_tokenizer.eos_token_id
    assert theirs[:2] == [bos, bos] and theirs == [bos] + ours.input_ids, "deliberate: one BOS, not two"
    masked = [i for i, label in enumerate(labels) if label == -100]
    assert masked and all(theirs[i] == eos for i in masked) and theirs.count(eos) == len(masked) == 2
    assert ours.completion_mask == [1] * len(ours.input_ids), "deliberate: the loss stays on </s>"
    # inference: the tutorial's f"<s>[INST] {prompt} [/INST]"
    question = Record(turns=[Turn("user", data["example"]["prompt"])], task="chat")
    assert render_prompt(question, config.data.template) == data["example"]["inference_prompt"]


# ---------------------------------------------------------------- Llama-3 OpenHermes (002)


def llama3_encode_dialog_prompt(dialog: list[dict]) -> str:
    """The tutorial's _return_header / encode_header / encode_message / encode_dialog_prompt, as written there."""
    def header(message):
        return {"system": "system", "gpt": "assistant", "human": "user"}.get(message["from"], "")

    def encode_message(message):
        return ("<|start_header_id|>" + header(message) + "<|end_header_id|>" + "\n\n" + message["value"].strip()
                + "<|eot_id|>")
    return "<|begin_of_text|>" + "".join(encode_message(m) for m in dialog)


@pytest.fixture(scope="module")
def llama3_tokenizer(embedded_model_dir):
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tokenizer = stand_in_tokenizer(None, specials, embedded_model_dir)  # its text carries <|begin_of_text|>
    tokenizer.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    return tokenizer


def test_llama3_bytes_and_tokens(tmp_path, llama3_tokenizer):
    from sqlft.training.dataset import encode
    from sqlft.prompts.record import Record, Turn
    from sqlft.prompts.templates import render, render_prompt

    data, config = fixture(LLAMA3), seed_config(fixture(LLAMA3))
    example = data["example"]
    content = llama3_encode_dialog_prompt(example["conversations"])
    assert re.sub(r"\s", "", content) == re.sub(r"\s", "", example["text_as_printed"]), \
        "the record is the one behind the tutorial's sample (its page lost the whitespace)"
    # the seed trains the tutorial's rendered `content` column as it is ...
    (pre_rendered,) = load_one(tmp_path, [{"content": content}], format="text",
                               columns=config.data.train[0].columns)
    ids = llama3_tokenizer(content, add_special_tokens=False)["input_ids"]  # --add_special_tokens False
    ours = encode(pre_rendered, config.data.template, llama3_tokenizer, loss=config.data.loss)
    assert ours.input_ids == ids and ours.completion_mask == [1] * len(ids), "every token has loss, as with packing"
    # ... and sqlft's llama3 template writes the same bytes from the ShareGPT record
    (record,) = load_one(tmp_path, [{"conversations": example["conversations"]}], format="sharegpt")
    rendered = render(record, config.data.template, llama3_tokenizer)
    assert rendered.prompt + rendered.completion == content
    assert encode(record, config.data.template, llama3_tokenizer, loss="full_text").input_ids == ids
    # inference: the trained format (the tutorial's printed prompt drops the "\n\n" its training text has)
    user = example["inference_user"]
    prompt = render_prompt(Record(turns=[Turn("user", user)], task="chat"), config.data.template)
    trained = llama3_encode_dialog_prompt([{"from": "human", "value": user}])
    assert prompt == trained + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    printed = next(r["quote"] for r in data["settings"] if r["setting"].startswith("inference prompt"))
    assert prompt != printed and prompt.replace("\n\n", "") == printed.replace("> ", ">"), \
        "the only difference from the tutorial's printed prompt is the header newlines"


# ---------------------------------------------------------------- LLaMA-Factory Yuan 2.0 (003)


@pytest.fixture(scope="module")
def yuan_tokenizer(tiny_yuan_dir):
    from sqlft.model.loading import load_tokenizer
    config = seed_config(fixture(YUAN), [f"model.name={tiny_yuan_dir}"])
    return load_tokenizer(config.model.name, config.model)


def llamafactory_053_ids(tokenizer, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """LLaMA-Factory 0.5.3's Template._encode with the yuan template: user "{{content}}" + <sep> token, the "\\n"
    separator before each later user turn, assistant "{{content}}" + EOS (<eod>); prompts have label -100."""
    ids, mask = [], []
    sep = tokenizer.convert_tokens_to_ids("<sep>")
    for i, (user, answer) in enumerate(turns):
        prompt = tokenizer.encode(("\n" if i else "") + user, add_special_tokens=False) + [sep]
        reply = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
        ids += prompt + reply
        mask += [0] * len(prompt) + [1] * len(reply)
    return ids, mask


def test_yuan_bytes_and_tokens(tmp_path, yuan_tokenizer):
    from sqlft.config import DatasetSpec
    from sqlft.training.dataset import encode
    from sqlft.data.formats import load_records
    from sqlft.prompts.templates import render

    data, config = fixture(YUAN), seed_config(fixture(YUAN))
    row = json.loads(data["example"]["record_json"])
    with_input = {"instruction": "Translate to English.", "input": "bonjour", "output": "hello"}
    history = {"instruction": "And in German?", "input": "", "output": "hallo", "history": [["Hi", "Hello!"]]}
    (tmp_path / "data.json").write_text(json.dumps([row, with_input, history], ensure_ascii=False), encoding="utf-8")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"alpaca_en": {"file_name": "data.json"}}))
    records, problems = load_records(DatasetSpec(path="alpaca_en", registry=str(tmp_path)))
    assert not problems
    water, translate, german = records
    assert translate.turns[0].content == "Translate to English.\nbonjour" and not translate.context, \
        "LLaMA-Factory's alpaca order: instruction, then input"
    assert config.data.template == "yuan_2024"

    rendered = render(water, config.data.template, yuan_tokenizer)
    assert rendered.prompt == row["instruction"] + "<sep>"
    theirs_text = row["output"] + "<eod>"  # LLaMA-Factory appends the EOS to the output as given
    assert theirs_text.endswith("\n<eod>  <eod>") and rendered.completion == row["output"].rstrip()
    assert rendered.completion == theirs_text.removesuffix("  <eod>"), "deliberate: one <eod>, not two"

    for record, turns in ((translate, [(with_input["instruction"] + "\nbonjour", "hello")]),
                          (german, [("Hi", "Hello!"), ("And in German?", "hallo")])):
        ours = encode(record, config.data.template, yuan_tokenizer, loss=config.data.loss)
        assert (ours.input_ids, ours.completion_mask) == llamafactory_053_ids(yuan_tokenizer, turns)
    ours = encode(water, config.data.template, yuan_tokenizer, loss=config.data.loss)
    theirs, theirs_mask = llamafactory_053_ids(yuan_tokenizer, [(row["instruction"], row["output"])])
    extra = yuan_tokenizer.encode("  <eod>", add_special_tokens=False)
    assert theirs == ours.input_ids + extra and theirs_mask == ours.completion_mask + [1] * len(extra)


def test_yuan_hub_registry_entry_says_which_file_to_fetch(tmp_path, monkeypatch):
    from sqlft.config import DatasetSpec
    from sqlft.data.errors import DataError
    from sqlft.data.formats import load_records

    # LLaMA-Factory's alpaca_en entry today (data/dataset_info.json): hub ids only
    entry = {"hf_hub_url": "llamafactory/alpaca_en", "ms_hub_url": "llamafactory/alpaca_en", "om_hub_url": "HaM/alpaca_en"}
    (tmp_path / "dataset_info.json").write_text(json.dumps({"alpaca_en": entry}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as conftest sets it: no test reaches a hub
    with pytest.raises(DataError) as err:
        load_records(DatasetSpec(path="alpaca_en", registry=str(tmp_path)))
    message = str(err.value)
    assert "llamafactory/alpaca_en" in message and "alpaca_en.json" in message
    assert '"file_name": "alpaca_en.json"' in message and str(tmp_path) in message
    assert "ModelScope" not in message, "the mirrors beside a Hugging Face id are not refused"
    from sqlft.commands.config_import import import_registry
    statuses = {line.key: line.status for line in import_registry(tmp_path / "dataset_info.json").lines}
    assert statuses == {"alpaca_en.hf_hub_url": "mapped", "alpaca_en.ms_hub_url": "implied",
                        "alpaca_en.om_hub_url": "implied"}


# ---------------------------------------------------------------- axolotl know_sql (004)


def test_axolotl_bytes_and_tokens(tmp_path, llama2_tokenizer):
    from sqlft.training.dataset import encode
    from sqlft.prompts.record import sql_record
    from sqlft.prompts.templates import render, render_prompt

    data, config = fixture(AXOLOTL), seed_config(fixture(AXOLOTL))
    example = data["example"]
    row = example["record"]
    (record,) = load_one(tmp_path, [row], format=config.data.train[0].format)
    rendered = render(record, config.data.template, llama2_tokenizer)
    # axolotl's context_qa.load_v2: prompt "Context: ...\nQuestion: ...\n", response "Answer: ..." + EOS
    prompt = "Context: " + row["context"] + "\nQuestion: " + row["question"] + "\n"
    response = "Answer: " + row["answer"]
    assert (rendered.prompt, rendered.completion) == (prompt, response + "</s>")
    # train_on_inputs: false: BOS + prompt without loss, the response and its EOS with loss
    theirs = llama2_tokenizer(prompt)["input_ids"]
    answer = llama2_tokenizer(response, add_special_tokens=False)["input_ids"] + [llama2_tokenizer.eos_token_id]
    ours = encode(record, config.data.template, llama2_tokenizer, loss=config.data.loss)
    assert ours.input_ids == theirs + answer and ours.completion_mask == [0] * len(theirs) + [1] * len(answer)
    # the tutorial's inference prompt (its sql_prompt): sqlft's sql template writes it byte for byte, but the seed
    # asks in the format it trained (a deliberate difference, configs/seeds/README.md)
    question = sql_record(row["context"], example["inference_question"], system=example["inference_system"])
    assert render_prompt(question, "sql") == example["inference_fmt"].format(row["context"],
                                                                            example["inference_question"])
    assert render_prompt(question, config.data.template) == ("Context: " + row["context"] + "\nQuestion: "
                                                             + example["inference_question"] + "\n")


# ---------------------------------------------------------------- every value against the seed configs


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_every_tutorial_value_is_in_the_seed_config(name):
    from sqlft.config import ConfigError
    from sqlft.model.loading import check_device_options, has_gpu

    data = fixture(name)
    config = seed_config(data)
    for row in data["settings"]:
        if row["key"] is None:
            assert row.get("why") or row.get("same"), f"{row['setting']}: no sqlft key, so the README must say why"
            continue
        expected = row.get("sqlft", row["tutorial"])
        assert config_value(config, row["key"]) == expected, row["setting"]
        if expected != row["tutorial"]:
            assert row.get("why"), f"{row['setting']}: differs from the tutorial without a reason"
    gpu_only = [row for row in data["settings"] if row.get("gpu_only")]
    if gpu_only and not has_gpu():  # the config keeps the tutorial's value; a CPU refuses it, saying what to set
        with pytest.raises(ConfigError, match="GPU-only options") as err:
            check_device_options(config)
        for row in gpu_only:
            assert f"{row['key']}={row['tutorial']}" in str(err.value)


def test_llama3_services_are_refused_here_with_what_to_do(monkeypatch):
    import importlib.util

    from sqlft.config import ConfigError
    from sqlft.training.common import check_services

    data = fixture(LLAMA3)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="train.push_to_hub needs the Hugging Face hub"):
        check_services(seed_config(data, ["train.report_to=none"]))
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="train.report_to=wandb needs the wandb package"):
            check_services(seed_config(data))


def imported_config(data: dict, tmp_path: Path) -> dict:
    from sqlft.config import load_config, to_dict
    from sqlft.commands.config_import import import_file, write

    source = FIXTURES / (data.get("command_file") or data["config_file"])
    # the DeepSpeed JSON named from the repository root, as the seed names it
    deepspeed = Path("configs/seeds/yuan2-zero2.json") if "command_file" in data else None
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        imported = import_file(source, deepspeed_json=deepspeed)
    finally:
        os.chdir(here)
    out = tmp_path / "imported.yaml"
    write(imported, out, source)
    return imported, to_dict(load_config(out))


@pytest.mark.parametrize("name", (YUAN, AXOLOTL))
def test_imported_seed_is_what_config_import_writes_from_the_tutorial(name, tmp_path):
    from sqlft.config import to_dict

    data = fixture(name)
    imported, config = imported_config(data, tmp_path)
    shipped = to_dict(seed_config(data))
    config["name"] = shipped["name"]  # the seed's file name; the import names it after output_dir
    assert config == shipped, "the shipped seed is the import of the tutorial's own file, value for value"
    header = [line[4:] for line in (SEEDS / data["seed"]).read_text().splitlines() if line.startswith("#   ")]
    report = imported.report().splitlines()
    assert [line for line in header if not line.startswith("deepspeed --")][-len(report):] == report, \
        "the seed's header is the import report"
    for row in data["extra"]:
        if row["key"]:
            assert config_value(seed_config(data), row["key"]) == row.get("sqlft", row["tutorial"]), row["setting"]


def test_merge_dtype_follows_the_training_precision(tiny_model_dir):
    from sqlft.config import load_config
    from sqlft.training.merge import merge_dtype

    def dtype(*overrides):
        return merge_dtype(load_config(None, list(overrides)), str(tiny_model_dir))
    assert dtype("train.precision=bf16", "model.method=lora") == "bfloat16"
    assert dtype("train.precision=fp16", "model.method=lora") == "float16"
    assert dtype("train.precision=fp32", "model.method=qlora", "model.compute_dtype=bfloat16") == "bfloat16"
    # fp32 training: the base's own 16-bit type, float16 for a base stored in float32 (the tiny model)
    assert dtype("train.precision=fp32", "model.method=lora") == "float16"


# ---------------------------------------------------------------- the DeepSpeed launch line (Yuan)


def test_train_reads_the_local_rank_deepspeed_appends(monkeypatch):
    from sqlft.commands.train import parse_args

    monkeypatch.setenv("LOCAL_RANK", "unset-after-the-test")  # so that the undo removes what parse_args sets
    monkeypatch.delenv("LOCAL_RANK")
    args = parse_args(["--local_rank=3", "seed.yaml", "train.max_steps=1"])  # deepspeed's launch.py order
    assert (args.local_rank, args.config, args.overrides, os.environ["LOCAL_RANK"]) == (
        3, "seed.yaml", ["train.max_steps=1"], "3")
    args = parse_args(["seed.yaml", "train.max_steps=1", "--local-rank", "3", "data.seed=1"])  # the dashed spelling
    assert args.overrides == ["train.max_steps=1", "data.seed=1"]
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(SystemExit):
        parse_args(["--local_rank=0", "seed.yaml"])
    assert "--module sqlft.commands.train" in README.read_text() and " -m sqlft.commands.train configs/seeds/llamafactory" not in \
        README.read_text(), "the README launches with deepspeed's --module"


@pytest.mark.slow
def test_deepspeed_module_launch_line_trains(tmp_path, tiny_model_dir, sql_jsonl):
    """The command deepspeed/launcher/launch.py runs for `deepspeed --num_gpus 1 --module sqlft.commands.train CONFIG ...`:
    [python, -u, -m, sqlft.commands.train, --local_rank=0, CONFIG, ...] with RANK, LOCAL_RANK and WORLD_SIZE set."""
    from sqlft.core.net import free_port

    config = tmp_path / "run.yaml"
    config.write_text("name: ds-launch\n")
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-u", "-m", "sqlft.commands.train", "--local_rank=0", str(config), f"model.name={tiny_model_dir}",
           "model.method=lora", f"data.train=[{{path: {sql_jsonl}}}]", "data.max_length=128", "train.max_steps=1",
           "train.report_to=none", "train.eval_steps=0", f"train.output_dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["global_step"] == 1


# ---------------------------------------------------------------- configs/seeds/README.md tables


def _show(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", "\\n")


def _row(*cells) -> str:
    return "| " + " | ".join(cells) + " |"


def tables() -> str:
    """The per-tutorial tables: setting | tutorial | sqlft | same?, from the fixtures and the shipped configs."""
    import tempfile

    out = []
    for name in ALL:
        data = fixture(name)
        config = seed_config(data)
        out += [f"### {data['tutorial']}", "",
                f"Source: `{data['source']}`; config: `configs/seeds/{data['seed']}`; test data: "
                f"`tests/fixtures/tutorials/{name}`.", "", _row("setting", "tutorial", "sqlft", "same?"),
                "|---|---|---|---|"]
        rows = data.get("settings", [])
        if name in (YUAN, AXOLOTL):
            with tempfile.TemporaryDirectory() as tmp:
                imported, _ = imported_config(data, Path(tmp))
            for line in imported.lines:
                if line.status == "empty":
                    continue
                same = {"mapped": "yes", "implied": "yes (implied)", "default": "yes (tool default)",
                        "not mapped": "no: no sqlft key"}[line.status]
                tutorial = ("(not set)" if line.status == "default" else "(implied)" if line.value is None
                            else f"`{_show(line.value)}`")
                out.append(_row(f"`{line.key}`", tutorial, _show(line.note), same))
            rows = data["extra"]
        for row in rows:
            if row["key"] is None:
                sqlft = _show(row["sqlft"])
            else:
                sqlft = f"`{row['key']}: {_show(config_value(config, row['key']))}`"
            if row.get("why_bytes") or row.get("why_semantics"):
                same = "no: " + (row.get("why_bytes") or row.get("why_semantics"))
            elif row["key"] is None:
                same = ("yes: " + row["note"]) if row.get("same") else "no: " + row["why"]
            elif config_value(config, row["key"]) == row["tutorial"]:
                same = "yes (GPU-only: refused on a CPU, with what to set)" if row.get("gpu_only") else \
                       f"yes ({row['service']})" if row.get("service") else "yes"
                same += f": {row['note']}" if row.get("note") else ""
            else:
                same = "no: " + row["why"]
            out.append(_row(_show(row["setting"]), f"`{_show(row['tutorial'])}`", sqlft, same))
        tokens = data.get("tokens")
        if tokens:
            same = "yes: " + tokens["note"] if tokens["same"] else "no: " + "; ".join(tokens["why"])
            out.append(_row("the example's token ids and loss mask", "its code, re-run in the test",
                            f"`data.template: {config.data.template}`, `data.loss: {config.data.loss}`", same))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_readme_tables_are_generated_from_the_fixtures_and_configs():
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert current == tables(), "configs/seeds/README.md is out of date: python tests/test_tutorials.py --write"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    sys.path.insert(0, str(ROOT))
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    README.write_text(head + BEGIN + "\n" + tables() + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")
    print(f"wrote the tutorial tables of {README}")
