"""Ask a model: questions + schema (DDL text or a .sql file) -> SQL, or (no --schema) instructions -> answers,
through the training prompt template. The model is loaded once for every question.

    sqlft ask MODEL "How many singers are there?" --schema schema.sql
    sqlft ask MODEL --schema schema.sql --questions questions.txt     # one question per line ('-': stdin)
    cat questions.txt | sqlft ask MODEL --schema schema.sql           # questions on stdin
    sqlft ask MODEL --schema schema.sql                               # on a terminal: a prompt, one question a line
    sqlft ask runs/guanaco/merged "What is a large language model?" --temperature 0.7 --top-p 0.9

MODEL is a base model (embedded:smollm2-135m-instruct, hub id, folder), a training run, or a merged folder.
Decoding follows the run's `generation` section (max_new_tokens, sampling, repetition penalty; a merged folder
reads its run's); the flags override it. Without --schema a question is a plain instruction (the tutorials'
Dolly, guanaco or OpenHermes models) and the answer is printed as written. With several questions each answer
follows a `-- question` line (--jsonl: one {"question", "answer"} object a line).
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

from sqlft.prompts.reply import extract_sql
from sqlft.config import ConfigError, GenerationConfig
from sqlft.core.errors import SqlftError
from sqlft.config.run_folder import RunFolder, read_merged_meta

PROMPT = "question> "  # the interactive prompt (a terminal and no question given)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft ask", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", help="base model, training run folder, or merged folder")
    parser.add_argument("question", nargs="*", help="one or more questions (none: --questions, stdin, or a prompt)")
    parser.add_argument("--questions", metavar="FILE", help="a text file of questions, one a line ('-': stdin)")
    parser.add_argument("--schema", help="CREATE TABLE text, or a file holding it (none: a plain instruction)")
    parser.add_argument("--system", default="", help="system text of a plain instruction (SQL prompts use the run's)")
    parser.add_argument("--template", help="prompt template (default: the run's, or the model's own chat template)")
    parser.add_argument("--max-new-tokens", type=int, help="answer budget (default: the run's "
                        "generation.max_new_tokens, else 128)")
    parser.add_argument("--temperature", type=float, help="0: greedy; > 0: sample (default: the run's generation "
                        "settings, else greedy)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling (with --temperature > 0; default: the run's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of sampling")
    parser.add_argument("--jsonl", action="store_true", help="print one JSON object a line: question, answer")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run a base model's own code (runs and merged folders record this themselves)")
    parser.add_argument("--show-prompt", action="store_true", help="print the exact prompt first")
    args = parser.parse_args(argv)
    if (args.temperature is not None and args.temperature < 0) or (args.top_p is not None and not 0 < args.top_p <= 1):
        parser.error("--temperature must be >= 0 and --top-p in (0, 1]")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be at least 1")
    if args.question and args.questions:
        parser.error("give questions as arguments or with --questions FILE, not both")
    if args.questions and args.questions != "-" and not Path(args.questions).is_file():
        parser.error(f"--questions: file not found: {args.questions}")
    return args


def run_generation(model_ref: str) -> GenerationConfig:
    """The decoding a model was trained to be asked with: a run's `generation` section (config.yaml), a merged
    folder's (sqlft.yaml, else the run it was merged from), else the defaults."""
    path = Path(model_ref)
    try:
        if RunFolder(path).is_run():
            return RunFolder(path).config().generation
        meta = read_merged_meta(path) or {}
    except ConfigError:  # a run whose config no longer reads: its other settings fail at load, with the reason
        return GenerationConfig()
    if isinstance(meta.get("generation"), dict):
        known = {f.name for f in dataclasses.fields(GenerationConfig)}
        return GenerationConfig(**{k: v for k, v in meta["generation"].items() if k in known})
    if meta.get("run") and RunFolder(meta["run"]).config_file.is_file():  # merged before sqlft.yaml recorded it
        try:
            return RunFolder(meta["run"]).config().generation
        except ConfigError:
            pass
    return GenerationConfig()


def generation(max_new_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
               base: GenerationConfig | None = None) -> GenerationConfig:
    """`base` (the run's decoding) with the flags given over it; greedy at temperature 0, sampling above it."""
    gen = dataclasses.replace(base or GenerationConfig())  # a copy: the run's own stays as read
    if max_new_tokens is not None:
        gen.max_new_tokens = max_new_tokens
    if temperature is not None:
        gen.do_sample = temperature > 0
        gen.temperature = temperature if temperature > 0 else 1.0
    if top_p is not None:
        gen.top_p = top_p
    return gen


def read_schema(schema: str) -> str:
    path = Path(schema)
    if len(schema) < 4096 and "\n" not in schema and path.suffix in (".sql", ".txt", ".ddl"):
        if not path.is_file():
            sys.exit(f"sqlft ask: schema file not found: {schema}")
        return path.read_text()
    return schema


def question_lines(lines: Iterable[str]) -> list[str]:
    """Questions of a file or stdin: one a line; blank lines and `#` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def interactive_questions(prompt: str = PROMPT) -> Iterator[str]:
    """Questions typed at a terminal, until an empty line, `exit`, Ctrl-D or Ctrl-C."""
    while True:
        try:
            line = input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        if not line or line in ("exit", "quit"):
            return
        yield line


class Asker:
    """One loaded model answering any number of questions over one schema (or plain instructions)."""

    def __init__(self, model_ref: str, db_schema: str | None, template: str | None = None,
                 gen: GenerationConfig | None = None, system: str = "", trust_remote_code: bool | None = None,
                 show_prompt: bool = False, seed: int = 0):
        import torch

        from sqlft.model.generate import InferenceModel

        self.model = InferenceModel.load(model_ref, template=template, trust_remote_code=trust_remote_code)
        self.db_schema, self.system, self.show_prompt = db_schema, system, show_prompt
        self.gen = gen or generation(base=run_generation(model_ref))
        torch.manual_seed(seed)  # once: a sampled session is reproducible as a whole

    def prompt(self, question: str) -> str:
        if self.db_schema:
            return self.model.sql_prompt(self.db_schema, question)
        return self.model.instruction_prompt(question, self.system)

    def answers(self, questions: list[str]) -> list[str]:
        """The answers, in order; generated in batches of generation.batch_size."""
        prompts = [self.prompt(q) for q in questions]
        if self.show_prompt:
            for prompt in prompts:
                print(f"--- prompt ({self.model.template}) ---\n{prompt}\n--- answer ---")
        texts = [g.text for g in self.model.generate(prompts, self.gen)]
        return [extract_sql(t) or t for t in texts] if self.db_schema else texts


def ask(model_ref: str, question: str, db_schema: str | None, template: str | None = None,
        max_new_tokens: int | None = None, show_prompt: bool = False, temperature: float | None = None,
        top_p: float | None = None, system: str = "", trust_remote_code: bool | None = None, seed: int = 0) -> str:
    """The SQL a model writes for one question over one schema (DDL text); with no schema, its answer to a plain
    instruction, as written. Decoding: the run's generation settings with the arguments given over them."""
    gen = generation(max_new_tokens, temperature, top_p, base=run_generation(model_ref))
    return Asker(model_ref, db_schema, template, gen, system, trust_remote_code, show_prompt, seed).answers([question])[0]


def print_answer(question: str, answer: str, several: bool, as_jsonl: bool) -> None:
    if as_jsonl:
        print(json.dumps({"question": question, "answer": answer}, ensure_ascii=False), flush=True)
    elif several:
        print(f"-- {' '.join(question.split())}\n{answer}\n", flush=True)
    else:
        print(answer, flush=True)


def main(argv=None) -> list[str]:
    args = parse_args(argv)
    try:
        return ask_all(args)
    except SqlftError as err:  # a model, run folder or server that cannot be used: the message says why
        sys.exit(f"sqlft ask: {err}")


def ask_all(args: argparse.Namespace) -> list[str]:
    """The questions of the command line (arguments, a file, stdin, or a terminal's prompt), answered and printed."""
    if args.question:
        questions: list[str] | None = args.question
    elif args.questions:
        source = sys.stdin if args.questions == "-" else open(args.questions, encoding="utf-8")
        with source:
            questions = question_lines(source)
    elif not sys.stdin.isatty():
        questions = question_lines(sys.stdin)
    else:
        questions = None  # a terminal: ask for them one by one once the model is loaded
    if questions == []:
        sys.exit("sqlft ask: no questions given (arguments, --questions FILE, or one a line on stdin)")
    db_schema = read_schema(args.schema) if args.schema else None
    gen = generation(args.max_new_tokens, args.temperature, args.top_p, base=run_generation(args.model))
    asker = Asker(args.model, db_schema, args.template, gen, args.system,
                  True if args.trust_remote_code else None, args.show_prompt, args.seed)
    answers = []
    if questions is None:
        print(f"[sqlft] {args.model} loaded; one question a line, an empty line or Ctrl-D ends", file=sys.stderr)
        for question in interactive_questions():
            answer = asker.answers([question])[0]
            print_answer(question, answer, False, args.jsonl)
            answers.append(answer)
        return answers
    for start in range(0, len(questions), gen.batch_size):
        batch = questions[start:start + gen.batch_size]
        for question, answer in zip(batch, asker.answers(batch)):  # printed batch by batch: a long file streams
            print_answer(question, answer, len(questions) > 1, args.jsonl)
            answers.append(answer)
    return answers


if __name__ == "__main__":
    main()
