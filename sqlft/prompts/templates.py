"""Prompt templates: the ONE place where prompt text is formatted, for training, eval, ask and serve alike.

`render(record, template, tokenizer)` gives (prompt, completion) for training; `render_prompt` gives the prompt
alone for inference. Both build the prompt with the same code, so a model sees at inference exactly the text it
was trained on (a train/inference prompt mismatch is the most common silent failure of fine-tuned models).
Run `python -m sqlft.prompts.templates` to print every template on a sample record.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sqlft.prompts.record import Record, Turn, sql_record
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION, format_schema

ALPACA_HEADER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")
LLAMA2_DEFAULT_SYSTEM = ""  # Llama-2 chat without a system block when the record has none


@dataclass(frozen=True)
class Rendered:
    prompt: str  # everything the model is given (no loss on it)
    completion: str  # what the model must write, end marker included (the loss is on this)


def user_text(record: Record, turn_index: int) -> str:
    """A user turn's text for chat templates: the context joins the first user turn, as in the sql template."""
    content = record.turns[turn_index].content
    if turn_index == 0 and record.context:
        return f"{record.context}\n===\n{content}"
    return content


def _pairs(record: Record) -> list[tuple[str, str | None]]:
    """(user, assistant) pairs; the last pair's assistant is None for an inference record."""
    turns = record.turns
    if not turns or turns[0].role != "user":
        raise ValueError(f"{record.source or 'record'}: a conversation must start with a user turn")
    pairs = []
    for i in range(0, len(turns), 2):
        if turns[i].role != "user" or (i + 1 < len(turns) and turns[i + 1].role != "assistant"):
            raise ValueError(f"{record.source or 'record'}: turns must alternate user/assistant")
        pairs.append((user_text(record, i), turns[i + 1].content if i + 1 < len(turns) else None))
    return pairs


def _sql(record, pairs, eos):
    # The seed tutorials' SQL context-QA format. Later turns repeat USER:/ASSISTANT:.
    text = f"SYSTEM: {record.system or ''}\n\n" if record.system else ""
    for user, answer in pairs[:-1]:
        text += f"USER: {user}\nASSISTANT: {answer}{eos}\n"
    user, answer = pairs[-1]
    return text + f"USER: {user}\nASSISTANT:", (f" {answer}{eos}" if answer is not None else None)


def _alpaca(record, pairs, eos):
    # Alpaca / Dolly format with Dolly's "### End" marker. The context becomes the Input: section, so it is
    # rendered from the raw first turn here rather than from user_text().
    header = record.system if record.system and record.task != "sql" else ALPACA_HEADER
    text = f"{header}\n\n"
    for i, (_, answer) in enumerate(pairs):
        instruction = record.turns[2 * i].content
        text += f"### Instruction:\n{instruction}\n\n"
        if i == 0 and record.context:
            text += f"Input:\n{record.context}\n\n"
        text += "### Response:\n"
        if i < len(pairs) - 1:  # written as the last answer is, so that each turn's text grows the conversation
            text += f"{answer}\n\n### End{eos}\n\n"
    answer = pairs[-1][1]
    return text, (f"{answer}\n\n### End{eos}" if answer is not None else None)


def _llama2(record, pairs, eos):
    text = ""
    for i, (user, answer) in enumerate(pairs):
        if i == 0 and record.system:
            user = f"<<SYS>>\n{record.system}\n<</SYS>>\n\n{user}"
        text += f"<s>[INST] {user} [/INST]"
        if i < len(pairs) - 1:
            text += f" {answer} </s>"
    answer = pairs[-1][1]
    return text, (f" {answer} </s>" if answer is not None else None)


def _llama3(record, pairs, eos):
    # Each message's text stripped, as Meta's ChatFormat.encode_message, its chat template (`| trim`) and the Llama-3
    # OpenHermes tutorial's encode_message do.
    def block(role, content):
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>"
    text = "<|begin_of_text|>" + (block("system", record.system) if record.system else "")
    for i, (user, answer) in enumerate(pairs):
        text += block("user", user)
        if i < len(pairs) - 1:
            text += block("assistant", answer)
    text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    answer = pairs[-1][1]
    return text, (f"{answer.strip()}<|eot_id|>" if answer is not None else None)


def _chatml(record, pairs, eos):
    def block(role, content):
        return f"<|im_start|>{role}\n{content}<|im_end|>\n"
    text = block("system", record.system) if record.system else ""
    for i, (user, answer) in enumerate(pairs):
        text += block("user", user)
        if i < len(pairs) - 1:
            text += block("assistant", answer)
    text += "<|im_start|>assistant\n"
    answer = pairs[-1][1]
    return text, (f"{answer}<|im_end|>" if answer is not None else None)


def _yuan(record, pairs, eos):
    # LLaMA-Factory's `yuan` template (hiyouga/LLaMA-Factory src/llamafactory/data/template.py, the Yuan 2.0 guide's
    # --template yuan): the system text is written as is before the first user turn, each user turn ends with the
    # <sep> token, each answer with "<eod>\n". An answer that already ends with <eod> does not get a second one.
    def answer_text(answer):
        return f"{answer.rstrip().removesuffix('<eod>')}<eod>\n"
    text = record.system or ""
    for user, answer in pairs[:-1]:
        text += f"{user}<sep>{answer_text(answer)}"
    user, answer = pairs[-1]
    return text + f"{user}<sep>", (answer_text(answer) if answer is not None else None)


def _yuan_2024(record, pairs, eos):
    # LLaMA-Factory's `yuan` template as the Yuan 2.0 guide ran it (src/train_bash.py, LLaMA-Factory 0.5 to 0.9.1,
    # Dec 2023 - Jan 2025): user "{{content}}" + <sep>, assistant "{{content}}" + the EOS token (replaced by <eod>),
    # and a "\n" separator written before each later user turn (on the prompt side, so it has no loss). An answer
    # that already ends with <eod> (the guide's own sample record does, then two spaces) gets no second one.
    def answer_text(answer):
        stripped = answer.rstrip()
        return (stripped.removesuffix("<eod>") if stripped.endswith("<eod>") else answer) + "<eod>"
    text = record.system or ""
    for i, (user, answer) in enumerate(pairs[:-1]):
        text += ("\n" if i else "") + f"{user}<sep>{answer_text(answer)}"
    user, answer = pairs[-1]
    text += ("\n" if len(pairs) > 1 else "") + f"{user}<sep>"
    return text, (answer_text(answer) if answer is not None else None)


def _context_qa(record, pairs, eos):
    # axolotl's `context_qa.load_v2` (the know_sql tutorial): no system text, "Context: ...\nQuestion: ...\n" as the
    # prompt, and "Answer: " is part of what the model learns to write. Later turns repeat Question:/Answer:.
    text = ""
    for i, (_, answer) in enumerate(pairs):
        if i == 0 and record.context:
            text += f"Context: {record.context}\n"
        text += f"Question: {record.turns[2 * i].content}\n"
        if i < len(pairs) - 1:
            text += f"Answer: {answer}{eos}\n"
    answer = pairs[-1][1]
    return text, (f"Answer: {answer}{eos}" if answer is not None else None)


def _tokenizer(record, pairs, tokenizer):
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'tokenizer' needs a tokenizer with a chat_template; "
                         "pick another template (data.template=chatml, llama3, ...)")
    messages = [{"role": "system", "content": record.system}] if record.system else []
    for user, answer in pairs:
        messages.append({"role": "user", "content": user})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    answer = pairs[-1][1]
    prompt_messages = messages[:-1] if answer is not None else messages
    prompt = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    if answer is None:
        return prompt, None
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the tokenizer's chat template does not extend the prompt with the answer; "
                         "use an explicit template (data.template=chatml, llama3, ...)")
    return prompt, full[len(prompt):].rstrip("\n")


@dataclass(frozen=True)
class Template:
    """One prompt format: how it renders a record and where a model's answer in it ends (as litgpt's PromptStyle
    owns apply() and stop_tokens()), so a template cannot be added without its stop markers."""
    name: str
    render: Callable  # (record, pairs, eos) -> (prompt, completion or None); `tokenizer` gets the tokenizer
    stops: tuple[str, ...]  # text at which generation stops (besides the tokenizer's EOS token)
    own_bos: bool = False  # the text starts with its own BOS marker: tokenise it without adding special tokens
    adds_eos: bool = False  # the answer ends with the tokenizer's EOS token (formats without an end marker)


TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template("sql", _sql, ("\nUSER:", "\nSYSTEM:"), adds_eos=True),
    Template("alpaca", _alpaca, ("### End", "### Instruction:"), adds_eos=True),
    # OVH's Dolly tutorial (create_prompt_formats, after databrickslabs/dolly's trainer): the alpaca text without an
    # EOS token after "### End", so the model learns to end with "### End" (a stop string here).
    Template("dolly", _alpaca, ("### End", "### Instruction:")),
    Template("llama2", _llama2, ("</s>", "[INST]"), own_bos=True),
    Template("llama3", _llama3, ("<|eot_id|>", "<|start_header_id|>"), own_bos=True),
    Template("chatml", _chatml, ("<|im_end|>", "<|im_start|>")),
    Template("yuan", _yuan, ("<eod>", "<sep>")),
    Template("yuan_2024", _yuan_2024, ("<eod>", "<sep>")),
    Template("context_qa", _context_qa, ("\nContext:", "\nQuestion:"), adds_eos=True),
    Template("tokenizer", _tokenizer, ()),  # the tokenizer's own chat template: its EOS token ends the answer
)}

# Templates whose text starts with its own BOS marker: tokenise them without adding special tokens again.
OWN_BOS = {name for name, t in TEMPLATES.items() if t.own_bos}


def check_template(template: str) -> None:
    if template not in TEMPLATES:
        import difflib
        close = difflib.get_close_matches(template, TEMPLATES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown template '{template}'.{hint} Choose one of: {', '.join(TEMPLATES)}")


def render(record: Record, template: str, tokenizer=None, schema_format: str = "ddl", *,
           schema_format_version: int = SCHEMA_FORMAT_VERSION) -> Rendered:
    """(prompt, completion) of a training record: the completion is its last assistant turn plus end marker."""
    check_template(template)
    if not record.answer:
        raise ValueError(f"{record.source or 'record'}: a training record must end with an assistant turn")
    prompt, completion = _render(record, template, tokenizer, schema_format, schema_format_version)
    return Rendered(prompt, completion)


def render_turns(record: Record, template: str, tokenizer=None, schema_format: str = "ddl", *,
                 schema_format_version: int = SCHEMA_FORMAT_VERSION) -> list[Rendered]:
    """The whole training text, one (text before, answer) pair per assistant turn: the loss on every answer.

    Each turn is rendered as the conversation up to that answer, so its text is exactly what render() gives for a
    record that ends there; a template whose earlier text changes when later turns follow cannot be split so.
    """
    check_template(template)
    if not record.answer:
        raise ValueError(f"{record.source or 'record'}: a training record must end with an assistant turn")
    pieces, done = [], ""
    for end in range(2, len(record.turns) + 1, 2):
        part = Record(**{**record.__dict__, "turns": record.turns[:end]})
        prompt, completion = _render(part, template, tokenizer, schema_format, schema_format_version)
        if not prompt.startswith(done):
            raise ValueError(f"{record.source or 'record'}: template '{template}' writes turn {end // 2 - 1} "
                             "differently once later turns follow, so the answers cannot be told apart; use "
                             "data.loss=completion or full_text, or another template")
        pieces.append(Rendered(prompt[len(done):], completion))
        done = prompt + completion
    return pieces


def render_prompt(record: Record, template: str, tokenizer=None, schema_format: str = "ddl", *,
                  schema_format_version: int = SCHEMA_FORMAT_VERSION) -> str:
    """The inference prompt: everything up to where the model starts writing its answer."""
    check_template(template)
    if record.answer:  # drop the target so that the prompt is exactly the training prompt
        record = Record(**{**record.__dict__, "turns": record.turns[:-1]})
    prompt, _ = _render(record, template, tokenizer, schema_format, schema_format_version)
    return prompt


def sql_prompt(db_schema: str, question: str, template: str, tokenizer=None, system: str | None = None,
               schema_format: str = "ddl", schema_format_version: int = SCHEMA_FORMAT_VERSION) -> str:
    """The prompt that asks for SQL over `db_schema`: used by eval, ask and serve."""
    record = sql_record(db_schema, question)
    if system is not None:
        record.system = system
    return render_prompt(record, template, tokenizer, schema_format, schema_format_version=schema_format_version)


def _render(record: Record, template: str, tokenizer, schema_format: str, schema_format_version: int):
    if record.task == "sql" and record.context:  # the schema text: the run's data.schema_format (sqlft.sql.schema)
        record = Record(**{**record.__dict__,
                           "context": format_schema(record.context, schema_format, schema_format_version)})
    pairs = _pairs(record)
    if template == "tokenizer":
        return _tokenizer(record, pairs, tokenizer)
    eos = (getattr(tokenizer, "eos_token", None) or "") if TEMPLATES[template].adds_eos else ""
    return TEMPLATES[template].render(record, pairs, eos)


def stop_strings(template: str, tokenizer=None) -> list[str]:
    """Strings that end generation for this template (the tokenizer's EOS token included)."""
    stops = list(TEMPLATES[template].stops)
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def main() -> None:
    sample = sql_record("CREATE TABLE head (age INTEGER)", "How many heads are older than 56?",
                        "SELECT COUNT(*) FROM head WHERE age > 56")
    for name in TEMPLATES:
        if name == "tokenizer":
            continue
        rendered = render(sample, name)
        print(f"===== {name}\n{rendered.prompt}\033[1m{rendered.completion}\033[0m\n")


if __name__ == "__main__":
    main()
