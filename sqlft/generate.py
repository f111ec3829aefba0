"""Inference: load a model from any reference and generate answers in batches, with the training prompt format.

A model reference is a base model (embedded:..., hub id, local HF folder), a training run folder (base + adapter,
or a full fine-tune), or a merged folder. Runs and merged folders carry their template and system text, so the
prompt at inference is the prompt the model was trained on.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from sqlft.config import Config, GenerationConfig, ModelConfig
from sqlft.modeling import DTYPES, has_gpu, load_tokenizer, resolve_model_path
from sqlft.record import SQL_SYSTEM
from sqlft.templates import OWN_BOS, check_template, sql_prompt, stop_strings

SQLFT_META = "sqlft.yaml"  # written into merged folders: base model, template, system text, training metrics


@dataclass
class Generation:
    text: str  # what the model wrote, cut at the template's stop text
    prompt_tokens: int
    new_tokens: int
    seconds: float  # wall time of the batch it was generated in


@dataclass
class ModelRef:
    """What a model reference resolves to."""
    kind: str  # "base", "run" (adapter), "full_run", "merged"
    weights: str  # folder or hub id to load weights from
    base: str  # base model name (for runs: the base the adapter sits on)
    template: str | None
    system: str
    adapter: str | None = None


def resolve_ref(ref: str) -> ModelRef:
    path = Path(ref)
    if (path / "config.yaml").is_file() and ((path / "adapter").is_dir() or (path / "model").is_dir()):
        cfg = yaml.safe_load((path / "config.yaml").read_text())
        base, template, system = cfg["model"]["name"], cfg["data"]["template"], cfg["data"]["system"]
        if (path / "adapter").is_dir():
            return ModelRef("run", base, base, template, system, adapter=str(path / "adapter"))
        return ModelRef("full_run", str(path / "model"), base, template, system)
    if (path / SQLFT_META).is_file():
        meta = yaml.safe_load((path / SQLFT_META).read_text())
        return ModelRef("merged", str(path), meta["base_model"], meta["template"], meta["system"])
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
    def load(cls, ref: str, template: str | None = None, dtype: str = "auto") -> "InferenceModel":
        from transformers import AutoModelForCausalLM

        resolved = resolve_ref(ref)
        torch.set_num_threads(os.cpu_count())
        tokenizer_source = resolved.adapter or resolved.weights
        tokenizer = load_tokenizer(tokenizer_source if resolved.kind != "base" else resolved.base)
        template = template or resolved.template or default_template(tokenizer)
        check_template(template)
        torch_dtype = DTYPES[dtype] if dtype != "auto" else (torch.bfloat16 if has_gpu() else torch.float32)
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(resolved.weights), dtype=torch_dtype)
        if resolved.adapter:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, resolved.adapter)
        if has_gpu():
            model = model.to("cuda")
        model.eval()
        return cls(model, tokenizer, template, resolved.system, resolved)

    @property
    def max_context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return sql_prompt(db_schema, question, self.template, self.tokenizer, system=self.system)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=self.template not in OWN_BOS)["input_ids"])

    @torch.inference_mode()
    def generate(self, prompts: list[str], gen: GenerationConfig | None = None) -> list[Generation]:
        """Answers in the order of `prompts`; batches hold prompts of similar length to waste less padding."""
        gen = gen or GenerationConfig()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), gen.batch_size):
            batch = order[start:start + gen.batch_size]
            for i, generation in zip(batch, self._generate_batch([prompts[i] for i in batch], gen)):
                results[i] = generation
        return results

    def _generate_batch(self, prompts: list[str], gen: GenerationConfig) -> list[Generation]:
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True,
                                add_special_tokens=self.template not in OWN_BOS).to(self.model.device)
        sampling = dict(do_sample=True, temperature=gen.temperature, top_p=gen.top_p) if gen.do_sample else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        start = time.perf_counter()
        output = self.model.generate(
            **inputs, max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams,
            repetition_penalty=gen.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_token_ids(), stop_strings=self.stops or None, tokenizer=self.tokenizer,
            **sampling)
        seconds = time.perf_counter() - start
        new = output[:, inputs["input_ids"].shape[1]:]
        results = []
        for row, mask in zip(new, inputs["attention_mask"]):
            n_new = int((row != self.tokenizer.pad_token_id).sum()) or 1
            text = self.tokenizer.decode(row, skip_special_tokens=False)
            results.append(Generation(cut_at_stop(text, self.stops), int(mask.sum()), n_new, seconds))
        return results

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
