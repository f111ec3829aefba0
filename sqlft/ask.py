"""Ask a model: question + schema (DDL text or a .sql file) -> SQL, or (no --schema) an instruction -> its answer,
through the training prompt template.

    sqlft ask MODEL "How many singers are there?" --schema schema.sql
    sqlft ask runs/smollm2-135m-lora-demo/merged "..." --schema "CREATE TABLE singer (id INT, name TEXT)"
    sqlft ask runs/guanaco/merged "What is a large language model?" --temperature 0.7 --top-p 0.9

MODEL is a base model (embedded:smollm2-135m-instruct, hub id, folder), a training run, or a merged folder.
Without --schema the question is a plain instruction (the tutorials' Dolly, guanaco or OpenHermes models) and the
answer is printed as written. Greedy by default; --temperature > 0 samples.
"""

import argparse
import sys
from pathlib import Path

from eval.sql import extract_sql
from sqlft.config import GenerationConfig


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft ask", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="base model, training run folder, or merged folder")
    parser.add_argument("question")
    parser.add_argument("--schema", help="CREATE TABLE text, or a file holding it (none: a plain instruction)")
    parser.add_argument("--system", default="", help="system text of a plain instruction (SQL prompts use the run's)")
    parser.add_argument("--template", help="prompt template (default: the run's, or the model's own chat template)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sample")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (with --temperature > 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of sampling")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run a base model's own code (runs and merged folders record this themselves)")
    parser.add_argument("--show-prompt", action="store_true", help="print the exact prompt first")
    args = parser.parse_args(argv)
    if args.temperature < 0 or not 0 < args.top_p <= 1:
        parser.error("--temperature must be >= 0 and --top-p in (0, 1]")
    return args


def generation(max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0) -> GenerationConfig:
    """Greedy at temperature 0, sampling above it."""
    sampling = temperature > 0
    return GenerationConfig(max_new_tokens=max_new_tokens, batch_size=1, do_sample=sampling,
                            temperature=temperature if sampling else 1.0, top_p=top_p)


def read_schema(schema: str) -> str:
    path = Path(schema)
    if len(schema) < 4096 and "\n" not in schema and path.suffix in (".sql", ".txt", ".ddl"):
        if not path.is_file():
            sys.exit(f"sqlft ask: schema file not found: {schema}")
        return path.read_text()
    return schema


def ask(model_ref: str, question: str, db_schema: str | None, template: str | None = None,
        max_new_tokens: int = 128, show_prompt: bool = False, temperature: float = 0.0, top_p: float = 1.0,
        system: str = "", trust_remote_code: bool | None = None, seed: int = 0) -> str:
    """The SQL a model writes for one question over one schema (DDL text); with no schema, its answer to a plain
    instruction, as written."""
    import torch

    from sqlft.generate import InferenceModel

    model = InferenceModel.load(model_ref, template=template, trust_remote_code=trust_remote_code)
    if db_schema:
        prompt = model.sql_prompt(db_schema, question)
    else:
        prompt = model.instruction_prompt(question, system)
    if show_prompt:
        print(f"--- prompt ({model.template}) ---\n{prompt}\n--- answer ---")
    torch.manual_seed(seed)
    text = model.generate([prompt], generation(max_new_tokens, temperature, top_p))[0].text
    if not db_schema:
        return text
    return extract_sql(text) or text


def main(argv=None) -> str:
    args = parse_args(argv)
    answer = ask(args.model, args.question, read_schema(args.schema) if args.schema else None, args.template,
                 args.max_new_tokens, args.show_prompt, args.temperature, args.top_p, args.system,
                 True if args.trust_remote_code else None, args.seed)
    print(answer)
    return answer


if __name__ == "__main__":
    main()
