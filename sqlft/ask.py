"""Ask a model for SQL: question + schema (DDL text or a .sql file) -> SQL, through the training prompt template.

    sqlft ask MODEL "How many singers are there?" --schema schema.sql
    sqlft ask runs/smollm2-135m-qlora-demo/merged "..." --schema "CREATE TABLE singer (id INT, name TEXT)"

MODEL is a base model (embedded:smollm2-135m-instruct, hub id, folder), a training run, or a merged folder.
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
    parser.add_argument("--schema", required=True, help="CREATE TABLE text, or a file holding it")
    parser.add_argument("--template", help="prompt template (default: the run's, or the model's own chat template)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--show-prompt", action="store_true", help="print the exact prompt first")
    return parser.parse_args(argv)


def read_schema(schema: str) -> str:
    path = Path(schema)
    if len(schema) < 4096 and "\n" not in schema and path.suffix in (".sql", ".txt", ".ddl"):
        if not path.is_file():
            sys.exit(f"sqlft ask: schema file not found: {schema}")
        return path.read_text()
    return schema


def ask(model_ref: str, question: str, db_schema: str, template: str | None = None, max_new_tokens: int = 128,
        show_prompt: bool = False) -> str:
    """The SQL a model writes for one question over one schema (DDL text)."""
    from sqlft.generate import InferenceModel

    model = InferenceModel.load(model_ref, template=template)
    prompt = model.sql_prompt(db_schema, question)
    if show_prompt:
        print(f"--- prompt ({model.template}) ---\n{prompt}\n--- answer ---")
    text = model.generate([prompt], GenerationConfig(max_new_tokens=max_new_tokens, batch_size=1))[0].text
    return extract_sql(text) or text


def main(argv=None) -> str:
    args = parse_args(argv)
    sql = ask(args.model, args.question, read_schema(args.schema), args.template, args.max_new_tokens,
              args.show_prompt)
    print(sql)
    return sql


if __name__ == "__main__":
    main()
