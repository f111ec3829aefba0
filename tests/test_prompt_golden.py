"""Every template x schema format renders byte-identical prompts, completions and stop markers to the golden file
written from the code before the issue-13 restructuring (tests/golden/prompts.json).

A change here changes what trained models see: only regenerate the file on purpose, and say why in the commit:
    python tests/test_prompt_golden.py --write
"""

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "prompts.json"
DEMO = Path(__file__).resolve().parent.parent / "sqlft" / "data" / "demo" / "train.jsonl"

# Schemas as the data gives them: know_sql's one-line DDL, Spider's tables.json DDL, DuckDB and PostgreSQL dumps,
# SQLite's untyped columns, quoted names, semicolons inside strings and comments, statements that are not tables.
SCHEMAS = {
    "one_line": "CREATE TABLE head (age INTEGER, name VARCHAR); CREATE TABLE dept (id INT, head_age INTEGER)",
    "spider": ('CREATE TABLE "department" (\n"Department_ID" int,\n"Name" text,\n"Budget_in_Billions" real,\n'
               'PRIMARY KEY ("Department_ID")\n);\nCREATE TABLE "management" (\n"department_ID" int,\n'
               '"head_ID" int,\n"temporary_acting" text,\nPRIMARY KEY ("Department_ID","head_ID"),\n'
               'FOREIGN KEY ("Department_ID") REFERENCES `department`("Department_ID"),\n'
               'FOREIGN KEY ("head_ID") REFERENCES `head`("head_ID")\n);'),
    "sqlite_untyped": "CREATE TABLE t (a, b TEXT, c INTEGER PRIMARY KEY);\nCREATE TABLE u (x REFERENCES t);",
    "semicolons": ("CREATE TABLE a (x TEXT DEFAULT 'a;\nb', y INT); -- a comment; with a semicolon\n"
                   "CREATE TABLE b (y INT, z VARCHAR(10) DEFAULT ';');\n/* block; comment */\n"
                   "CREATE TABLE \"c;d\" (v INT);"),
    "postgres_dump": ("CREATE TABLE public.cars (\n    id integer NOT NULL,\n    name character varying(20),\n"
                      "    price numeric(10,2),\n    made timestamp without time zone\n);\n"
                      "ALTER TABLE ONLY public.cars\n    ADD CONSTRAINT cars_pkey PRIMARY KEY (id);\n"
                      "COMMENT ON TABLE public.cars IS 'every car; one row each';\n"
                      "CREATE INDEX cars_name ON public.cars USING btree (name);"),
    "view_and_index": ("CREATE TABLE s (id INT PRIMARY KEY, n TEXT);\nCREATE VIEW v AS SELECT n FROM s;\n"
                       "CREATE INDEX i ON s(n);"),
    "multi_key": ("CREATE TABLE enrol (student_id INT, course_id INT, grade CHAR(1), "
                  "PRIMARY KEY (student_id, course_id), "
                  "FOREIGN KEY (student_id, course_id) REFERENCES offer (student_id, course_id));"),
    "not_sql": "tables: singer(id, name), concert(id, singer_id)",
    "empty": "",
    "types": ("CREATE TABLE k (a BOOLEAN, b DATE, c TIMESTAMPTZ, d BLOB, e DECIMAL(5,2), f UUID, g JSON, "
              "h TIME, i HUGEINT, j ENUM('x','y'), l INTERVAL);"),
    "names_to_quote": 'CREATE TABLE "my table" ("first name" TEXT, "Home Town" TEXT, id INT PRIMARY KEY);',
}


def demo_schemas(limit: int = 6) -> dict[str, str]:
    """The demo set's schemas (DuckDB DDL from sqlft.sql.database.schema_ddl), one per distinct context."""
    found = {}
    for line in DEMO.read_text().splitlines():
        row = json.loads(line)
        if row["context"] not in found.values() and len(found) < limit:
            found[f"demo_{row['db_id']}_{len(found)}"] = row["context"]
    return found


def render_all(tokenizer) -> dict[str, str]:
    from sqlft.prompts.record import Record, Turn, sql_record
    from sqlft.sql.schema import SCHEMA_FORMAT_VERSION, SCHEMA_FORMATS
    from sqlft.prompts.templates import TEMPLATES, render, sql_prompt, stop_strings

    chat = Record([Turn("user", "Hi; who are you?"), Turn("assistant", "A model."), Turn("user", "And SQL?"),
                   Turn("assistant", "SELECT 1;")], system="Be brief.", task="chat")
    instruct = Record([Turn("user", "Summarise the text."), Turn("assistant", "It is short.")],
                      context="A short text.", task="instruct")
    out = {}
    for template in TEMPLATES:
        for tok_name, tok in (("tok", tokenizer), ("none", None)):
            if tok is None and template not in ("sql", "alpaca"):  # only these two add the tokenizer's EOS
                continue
            out[f"{template}|{tok_name}|stops"] = json.dumps(stop_strings(template, tok))
            for name, record in (("chat", chat), ("instruct", instruct)):
                rendered = render(record, template, tok)
                out[f"{template}|{tok_name}|{name}"] = rendered.prompt + "\u2016" + rendered.completion
            # compact@1: runs trained before schema format versions are still asked with version 1's prompts
            versions = [(f, SCHEMA_FORMAT_VERSION, f) for f in SCHEMA_FORMATS] + [("compact", 1, "compact@1")]
            for schema_format, version, label in versions:
                for name, ddl in {**SCHEMAS, **demo_schemas()}.items():
                    key = f"{template}|{tok_name}|{label}|{name}"
                    schema = dict(schema_format=schema_format, schema_format_version=version)
                    out[key + "|prompt"] = sql_prompt(ddl, "How many rows; and why?", template, tok, **schema)
                    rendered = render(sql_record(ddl, "How many rows?", "SELECT count(*) FROM t"), template, tok,
                                      **schema)
                    out[key + "|train"] = rendered.prompt + "\u2016" + rendered.completion
    return out


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(embedded_model_dir)


def test_prompts_are_byte_identical_to_the_golden_file(tokenizer):
    golden = json.loads(GOLDEN.read_text())
    now = render_all(tokenizer)
    assert set(now) == set(golden)
    changed = [key for key in golden if now[key] != golden[key]]
    assert not changed, f"{len(changed)} renderings changed, e.g. {changed[:5]}: {now[changed[0]]!r}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    from transformers import AutoTokenizer

    from sqlft.model.embedded import resolve_embedded
    GOLDEN.parent.mkdir(exist_ok=True)
    rendered = render_all(AutoTokenizer.from_pretrained(resolve_embedded("embedded:smollm2-135m-instruct")))
    GOLDEN.write_text(json.dumps(rendered, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(rendered)} renderings to {GOLDEN}")
