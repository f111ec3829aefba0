"""Generation on an OpenAI-compatible server (vLLM, TGI, llama.cpp server) with the training prompt format.

    backend = OpenAIBackend("http://127.0.0.1:8000/v1", "sqlft", model_dir="runs/x/merged")
    backend.generate([backend.sql_prompt(ddl, question)], GenerationConfig())   # -> [Generation]

Same shape as sqlft.model.generate.InferenceModel. Prompts are rendered here by sqlft.prompts.templates and sent raw to
/v1/completions (not /chat/completions, whose server-side chat template may differ from the training one).
"""

import logging
import math
from collections.abc import Callable

import httpx

from sqlft.core.errors import SqlftError
from sqlft.config import GenerationConfig
from sqlft.model.generate import cut_at_stop, default_template, resolve_ref
from sqlft.model.protocol import Generation
from sqlft.prompts.record import SQL_SYSTEM
from sqlft.prompts.templates import OWN_BOS, check_template, sql_prompt, stop_strings
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION

log = logging.getLogger("sqlft.model.remote")

DEFAULT_CONTEXT = 2048  # when neither a model folder nor the server says
CHARS_PER_TOKEN = 3.0  # without a tokenizer: a cautious guess (English ~4, SQL DDL ~3), so it errs on refusing


class RemoteError(SqlftError, RuntimeError):
    """The server could not be reached or answered with an error; the message says which and why."""


class OpenAIBackend:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0, *,
                 template: str | None = None, model_dir: str | None = None, max_context: int | None = None):
        """model: the served model name. model_dir (a merged folder, run, or model folder) gives the tokenizer
        (exact token counts), template and system text it was trained with, and the context length."""
        self.base_url, self.model = base_url.rstrip("/"), model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.tokenizer = None
        self.system = SQL_SYSTEM
        folder_template, folder_context, self.schema_format = None, None, "ddl"
        self.schema_format_version = SCHEMA_FORMAT_VERSION
        self.sql_dialect: str | None = None  # of the training SQL, when model_dir tells
        if model_dir:
            (self.tokenizer, folder_template, self.system, folder_context, self.schema_format,
             self.schema_format_version, self.sql_dialect) = _read_model_dir(model_dir)
        # As InferenceModel: the folder's training template, else the tokenizer's own chat template.
        self.template = template or folder_template or (default_template(self.tokenizer) if self.tokenizer else "chatml")
        check_template(self.template)
        self.stops = stop_strings(self.template, self.tokenizer)
        self.max_context = max_context or folder_context or self._served_context() or DEFAULT_CONTEXT

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return sql_prompt(db_schema, question, self.template, self.tokenizer, system=self.system,
                          schema_format=self.schema_format, schema_format_version=self.schema_format_version)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(self.tokenizer(text, add_special_tokens=self.template not in OWN_BOS)["input_ids"])

    def generate(self, prompts: list[str], gen: GenerationConfig | None = None,
                 on_answer: Callable[[int], None] | None = None) -> list[Generation]:
        """Answers in the order of `prompts`, gen.batch_size prompts per request (the server batches them).
        on_answer(n): the n answers of a request are in."""
        gen = gen or GenerationConfig()
        if gen.num_beams > 1:
            raise ValueError("beam search is not part of the OpenAI completions API: use num_beams=1")
        results = []
        for start in range(0, len(prompts), max(1, gen.batch_size)):
            answers = self._complete(prompts[start:start + gen.batch_size], gen)
            results += answers
            if on_answer is not None:
                on_answer(len(answers))
        return results

    def _complete(self, prompts: list[str], gen: GenerationConfig) -> list[Generation]:
        body = {"model": self.model, "prompt": prompts, "max_tokens": gen.max_new_tokens, "n": 1,
                "temperature": gen.temperature if gen.do_sample else 0.0,
                "top_p": gen.top_p if gen.do_sample else 1.0, "stop": self.stops}
        if gen.repetition_penalty != 1.0:
            body["repetition_penalty"] = gen.repetition_penalty  # a vLLM extension
        if self.template in OWN_BOS:
            body["add_special_tokens"] = False  # vLLM: the prompt already starts with its BOS text
        data, seconds = self._post("/completions", body)
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise RemoteError(f"{self.base_url}/completions answered {len(choices)} choices for {len(prompts)} prompts")
        usage = data.get("usage") or {}
        results = []
        for prompt, choice in zip(prompts, choices):
            text = cut_at_stop(choice.get("text") or "", self.stops)  # servers that ignore `stop`
            if len(prompts) == 1 and usage:  # usage is per request: exact only for one prompt
                prompt_tokens, new_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
            else:
                prompt_tokens, new_tokens = self.count_tokens(prompt), self.count_tokens(text)
            results.append(Generation(text, prompt_tokens, new_tokens, seconds))
        return results

    def _post(self, path: str, body: dict) -> tuple[dict, float]:
        try:
            response = self.client.post(path, json=body)
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {self.base_url}{path}: {type(e).__name__}: {e}") from e
        if response.status_code >= 400:
            raise RemoteError(f"{self.base_url}{path} answered {response.status_code}: {_error_text(response)}")
        try:
            return response.json(), response.elapsed.total_seconds()
        except ValueError as e:
            raise RemoteError(f"{self.base_url}{path} answered something that is not JSON: {response.text[:200]}") from e

    def _served_context(self) -> int | None:
        """vLLM lists max_model_len in /v1/models; other servers may not: then None."""
        try:
            response = self.client.get("/models", timeout=5)
            for entry in response.json().get("data", []):
                if entry.get("id") == self.model and entry.get("max_model_len"):
                    return int(entry["max_model_len"])
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            log.warning("could not read the context length from %s/models (%s); assuming %d tokens",
                        self.base_url, e, DEFAULT_CONTEXT)
        return None

    def close(self) -> None:
        self.client.close()


def _read_model_dir(model_dir: str):
    """(tokenizer, template, system, context length, schema format and its version, SQL dialect) of a merged folder,
    run or model folder."""
    from transformers import AutoConfig

    from sqlft.model.loading import load_tokenizer, resolve_model_path

    ref = resolve_ref(model_dir)
    tokenizer = load_tokenizer(ref.adapter or ref.weights if ref.kind != "base" else ref.base,
                               trust_remote_code=ref.trust_remote_code)
    config = AutoConfig.from_pretrained(resolve_model_path(ref.weights), trust_remote_code=ref.trust_remote_code)
    context = getattr(config, "max_position_embeddings", None)
    return (tokenizer, ref.template, ref.system, int(context) if context else None, ref.schema_format,
            ref.schema_format_version, ref.sql_dialect)


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
    except (ValueError, AttributeError):
        pass
    return response.text[:500]
