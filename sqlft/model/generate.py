"""Inference: load a model from any reference and generate answers in batches, with the training prompt format.

A model reference is a base model (embedded:..., hub id, local HF folder), a training run folder (base + adapter,
or a full fine-tune), or a merged folder. Runs and merged folders carry their template and system text, so the
prompt at inference is the prompt the model was trained on.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sqlft.config import GenerationConfig
from sqlft.model.loading import fit_embeddings, has_gpu, load_tokenizer, resolve_model_path
from sqlft.model.precision import weights_dtype
from sqlft.model.protocol import Generation
from sqlft.prompts.record import SQL_SYSTEM, Record, Turn
from sqlft.config.run_folder import RunFolder, read_merged_meta
from sqlft.prompts.templates import OWN_BOS, check_template, render_prompt, sql_prompt, stop_strings
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION


@dataclass
class ModelRef:
    """What a model reference resolves to."""
    kind: str  # "base", "run" (adapter), "full_run", "merged"
    weights: str  # folder or hub id to load weights from
    base: str  # base model name (for runs: the base the adapter sits on)
    template: str | None
    system: str
    adapter: str | None = None
    schema_format: str = "ddl"  # how the schema is written into prompts (sqlft.sql.schema), as trained
    schema_format_version: int = SCHEMA_FORMAT_VERSION  # of that format's rendering, as trained (1: before versions)
    sql_dialect: str | None = None  # dialect of the SQL it was trained on (None: a base model, unknown)
    trust_remote_code: bool = False  # the model's own code (auto_map) runs at load, as it did in training


def resolve_ref(ref: str) -> ModelRef:
    path = Path(ref)
    run = RunFolder(path)
    if run.is_run():
        cfg = run.config()  # typed: defaults fill what older runs did not record (schema_format, sql_dialect)
        base, template, system = cfg.model.name, cfg.data.template, cfg.data.system
        common = dict(schema_format=cfg.data.schema_format, schema_format_version=cfg.data.schema_format_version,
                      sql_dialect=cfg.data.sql_dialect, trust_remote_code=cfg.model.trust_remote_code)
        if run.has_adapter:
            return ModelRef("run", base, base, template, system, adapter=str(run.adapter), **common)
        return ModelRef("full_run", str(run.model), base, template, system, **common)
    meta = read_merged_meta(path)
    if meta is not None:
        return ModelRef("merged", str(path), meta["base_model"], meta["template"], meta["system"],
                        schema_format=meta.get("schema_format", "ddl"), sql_dialect=meta.get("sql_dialect"),
                        # merged before schema formats had versions: version 1 wrote its prompts
                        schema_format_version=int(meta.get("schema_format_version", 1)),
                        trust_remote_code=bool(meta.get("trust_remote_code", False)))
    if path.exists() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{ref} is neither a training run (config.yaml + adapter/), a merged folder, "
                                "nor a Hugging Face model folder (config.json)")
    return ModelRef("base", ref, ref, None, SQL_SYSTEM)


class InferenceModel:
    def __init__(self, model, tokenizer, template: str, system: str, ref: ModelRef):
        self.model, self.tokenizer, self.template, self.system, self.ref = model, tokenizer, template, system, ref
        self.tokenizer.padding_side = "left"  # batched decoding: every row's last token is at the same position
        self.stops = stop_strings(template, tokenizer)

    @classmethod
    def load(cls, ref: str, template: str | None = None, dtype: str = "auto",
             trust_remote_code: bool | None = None) -> "InferenceModel":
        """trust_remote_code: None takes what the run or merged folder recorded (off for a plain base model)."""
        from transformers import AutoModelForCausalLM

        resolved = resolve_ref(ref)
        remote = resolved.trust_remote_code if trust_remote_code is None else trust_remote_code
        torch.set_num_threads(os.cpu_count())
        tokenizer_source = resolved.adapter or resolved.weights
        tokenizer = load_tokenizer(tokenizer_source if resolved.kind != "base" else resolved.base,
                                   trust_remote_code=remote)
        template = template or resolved.template or default_template(tokenizer)
        check_template(template)
        torch_dtype = weights_dtype(dtype)  # auto: the GPU's native 16-bit type, fp32 on a CPU
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(resolved.weights), dtype=torch_dtype,
                                                     trust_remote_code=remote)
        if resolved.adapter:
            from peft import PeftModel
            fit_embeddings(model, tokenizer)  # tokens the run added: the adapter holds their trained rows
            model = PeftModel.from_pretrained(model, resolved.adapter)
            if torch_dtype == torch.float32:
                # Folding the adapter into float32 weights changes answers by rounding alone and saves the
                # adapter's extra matmuls at every layer (x1.25 faster generation on the CPU default). In 16
                # bits the rounding can flip answers (see sqlft.training.merge), so the adapter stays separate there.
                model = model.merge_and_unload()
        if has_gpu():
            model = model.to("cuda")
        model.eval()
        return cls(model, tokenizer, template, resolved.system, resolved)

    @property
    def sql_dialect(self) -> str | None:
        """The dialect of the SQL the model was trained on (serve transpiles from it); None for a base model."""
        return self.ref.sql_dialect

    @property
    def max_context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def instruction_prompt(self, text: str, system: str = "") -> str:
        """The prompt of a plain instruction (no schema), for models trained on instruction or chat data."""
        record = Record(turns=[Turn("user", text)], system=system, task="instruct")
        return render_prompt(record, self.template, self.tokenizer)

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return sql_prompt(db_schema, question, self.template, self.tokenizer, system=self.system,
                          schema_format=self.ref.schema_format,
                          schema_format_version=self.ref.schema_format_version)

    def encode(self, prompt: str) -> list[int]:
        """A rendered prompt's token ids, as generation reads it (a BOS only where the template has none)."""
        return self.tokenizer(prompt, add_special_tokens=self.template not in OWN_BOS)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    @torch.inference_mode()
    def greedy_ids(self, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
        """Greedy answers as token ids (the stop token included), one batch: what `sqlft merge` checks."""
        gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=max(1, len(prompts)))
        return self._decode([self.encode(p) for p in prompts], gen)

    @torch.inference_mode()
    def generate(self, prompts: list[str], gen: GenerationConfig | None = None,
                 on_answer: Callable[[int], None] | None = None) -> list[Generation]:
        """Answers in the order of `prompts`. Batches take prompts in text order, so that the prompts of a batch
        share a long prefix (system text and the schema of one database) and lengths are alike.
        on_answer(n): n more answers are finished (progress bars)."""
        gen = gen or GenerationConfig()
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
        results: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), gen.batch_size):
            batch = order[start:start + gen.batch_size]
            for i, generation in zip(batch, self._generate_batch([prompts[i] for i in batch], gen, on_answer)):
                results[i] = generation
        return results

    def _generate_batch(self, prompts: list[str], gen: GenerationConfig,
                        on_answer: Callable[[int], None] | None = None) -> list[Generation]:
        ids = [self.encode(p) for p in prompts]
        start = time.perf_counter()
        if gen.num_beams == 1 and gen.repetition_penalty == 1.0:
            new = self._decode(ids, gen, on_answer)
        else:
            new = self._hf_generate(ids, gen)
            if on_answer is not None:
                on_answer(len(new))
        seconds = time.perf_counter() - start
        return [Generation(cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=False), self.stops),
                           len(prompt_ids), max(len(row), 1), seconds) for row, prompt_ids in zip(new, ids)]

    def _decode(self, ids: list[list[int]], gen: GenerationConfig,
                on_answer: Callable[[int], None] | None = None) -> list[list[int]]:
        """sqlft.model.decoding: the shared prefix read once (gen.prefix_cache), finished rows dropped in bulk."""
        from sqlft.model.decoding import decode  # imports transformers: serve and remote clients import this module

        vocab = self.tokenizer.get_vocab()
        text_stops = [s for s in self.stops if s not in vocab]  # single-token stops are in stop_token_ids()

        def stop_text(row: list[int]) -> bool:
            tail = self.tokenizer.decode(row[-16:], skip_special_tokens=False)
            return any(s in tail for s in text_stops)

        return decode(self.model, ids, prefix_cache=gen.prefix_cache, pad_id=self.tokenizer.pad_token_id,
                      max_new_tokens=gen.max_new_tokens, stop_ids=self.stop_token_ids(),
                      stop_text=stop_text if text_stops else None, do_sample=gen.do_sample,
                      temperature=gen.temperature, top_p=gen.top_p, on_done=on_answer)

    def _hf_generate(self, ids: list[list[int]], gen: GenerationConfig) -> list[list[int]]:
        """Beam search and repetition penalty: transformers' generate() on left-padded rows."""
        from sqlft.model.decoding import pad_after_prefix

        input_ids, attention_mask = pad_after_prefix(ids, 0, self.tokenizer.pad_token_id)
        sampling = dict(do_sample=True, temperature=gen.temperature, top_p=gen.top_p) if gen.do_sample else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        output = self.model.generate(
            input_ids=input_ids.to(self.model.device), attention_mask=attention_mask.to(self.model.device),
            max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams, repetition_penalty=gen.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.stop_token_ids(),
            stop_strings=self.stops or None, tokenizer=self.tokenizer, **sampling)
        pad = self.tokenizer.pad_token_id
        return [[t for t in row.tolist() if t != pad] for row in output[:, input_ids.shape[1]:]]

    def stop_token_ids(self) -> list[int]:
        return stop_token_ids(self.template, self.tokenizer)


def stop_token_ids(template: str, tokenizer) -> list[int]:
    """EOS plus every stop string that is a single token (<|im_end|>, <|eot_id|>, </s>, <eod>)."""
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id} | {vocab[s] for s in stop_strings(template, tokenizer) if s in vocab}
    return sorted(i for i in ids if i is not None)


def cut_at_stop(text: str, stops: list[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=len(text))
    return text[:cut].strip()


def default_template(tokenizer) -> str:
    """For a plain base model: its own chat template if it has one, else the seed tutorials' SQL format."""
    return "tokenizer" if getattr(tokenizer, "chat_template", None) else "sql"
