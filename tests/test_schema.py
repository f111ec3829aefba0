"""Compact schema serialisation: names, coarse types, keys and joins kept; nothing lost that cannot be parsed."""

import json

import pytest

from sqlft.prompts.record import sql_record
from sqlft.sql.schema import format_schema
from sqlft.prompts.templates import render, sql_prompt
from tests.conftest import shared_data

SPIDER_DDL = ("CREATE TABLE head (head_ID NUMERIC, name TEXT, born_state TEXT, age NUMERIC, "
              "PRIMARY KEY (head_ID));\n"
              "CREATE TABLE management (department_ID NUMERIC, head_ID NUMERIC, temporary_acting TEXT, "
              "PRIMARY KEY (department_ID), FOREIGN KEY (head_ID) REFERENCES head(head_ID));")


def test_compact_keeps_names_types_keys_and_joins():
    assert format_schema(SPIDER_DDL, "compact") == (
        "head(head_ID num pk, name text, born_state text, age num)\n"
        "management(department_ID num pk, head_ID num ->head.head_ID, temporary_acting text)")


def test_ddl_is_unchanged_and_unknown_format_is_refused():
    assert format_schema(SPIDER_DDL, "ddl") == SPIDER_DDL
    with pytest.raises(ValueError, match="compact"):
        format_schema(SPIDER_DDL, "json")


def test_postgres_types_composite_keys_and_inline_references():
    ddl = ("CREATE TABLE orders (id bigint PRIMARY KEY, placed timestamp without time zone, total numeric(10,2), "
           "paid boolean, customer_id integer REFERENCES customers, note character varying(50));\n"
           "CREATE TABLE lines (order_id int, line int, PRIMARY KEY (order_id, line), "
           "FOREIGN KEY (order_id, line) REFERENCES other(a, b));")
    assert format_schema(ddl, "compact") == (
        "orders(id int pk, placed timestamp, total num, paid bool, customer_id int ->customers.customer_id, "
        "note text)\n"
        "lines(order_id int, line int, pk(order_id, line), (order_id, line) ->other(a, b))")


def test_what_is_not_a_parseable_create_table_is_kept_verbatim():
    ddl = "-- sales schema\nCREATE VIEW v AS SELECT 1;\nCREATE TABLE t (a INT);\nCREATE TABLE broken (a INT,"
    assert format_schema(ddl, "compact") == \
        "-- sales schema\nCREATE VIEW v AS SELECT 1;\nt(a int)\nCREATE TABLE broken (a INT,"


def test_train_and_inference_prompts_carry_the_same_compact_schema():
    record = sql_record(SPIDER_DDL, "How many heads are older than 56?", "SELECT count(*) FROM head WHERE age > 56")
    trained = render(record, "chatml", schema_format="compact").prompt
    asked = sql_prompt(SPIDER_DDL, "How many heads are older than 56?", "chatml", schema_format="compact")
    assert trained == asked
    assert "CREATE TABLE" not in asked and "head(head_ID num pk" in asked


def test_only_sql_records_are_reformatted():
    from sqlft.prompts.record import Record, Turn
    alpaca = Record(turns=[Turn("user", "Summarise"), Turn("assistant", "ok")], context="CREATE TABLE t (a INT);")
    assert "CREATE TABLE t (a INT);" in render(alpaca, "chatml", schema_format="compact").prompt


def test_every_spider_train_schema_compacts_without_leftover_ddl():
    rows = [json.loads(line) for line in shared_data("spider_train", "spider_train.jsonl").open()]
    schemas = {r["db_id"]: r["context"] for r in rows}
    for db_id, ddl in schemas.items():
        compact = format_schema(ddl, "compact")
        assert "CREATE" not in compact, db_id
        assert len(compact) < 0.8 * len(ddl), db_id


def test_one_line_multi_table_ddl_is_compacted_table_by_table():
    ddl = "CREATE TABLE a (x INT); CREATE TABLE b (y INT)"
    assert format_schema(ddl, "compact") == "a(x int)\nb(y int)"
    assert format_schema(ddl, "compact", 1) == ddl  # version 1 cut only at a ';' ending a line


def test_names_that_are_not_plain_identifiers_are_quoted():
    ddl = ('CREATE TABLE "my table" ("first name" TEXT, id INT PRIMARY KEY, "x""y" INT, '
           'FOREIGN KEY ("first name") REFERENCES "other t"("full name"));')
    assert format_schema(ddl, "compact") == \
        '"my table"("first name" text ->"other t"."full name", id int pk, "x""y" int)'
    assert format_schema(ddl, "compact", 1) == 'my table(first name text ->other t.full name, id int pk, x"y int)'


def test_unreadable_ddl_keeps_what_follows_as_written():
    ddl = "CREATE TABLE a (x INT);\nCREATE TABLE b (y TEXT DEFAULT 'open; z INT)"
    assert format_schema(ddl, "compact") == "a(x int)\nCREATE TABLE b (y TEXT DEFAULT 'open; z INT)"


def test_a_runs_config_without_a_schema_format_version_is_asked_as_trained(tmp_path):
    """Runs trained before versions have no data.schema_format_version in their config.yaml: their prompts were
    written by version 1, and every inference path (resolve_ref: ask, eval, serve) keeps writing them so."""
    import yaml

    from sqlft.config import load_config, save_config
    from sqlft.model.generate import resolve_ref
    from sqlft.prompts.templates import sql_prompt

    ddl = "CREATE TABLE a (x INT); CREATE TABLE b (y INT)"
    prompts = {}
    for name in ("old", "new"):
        run = tmp_path / name
        (run / "adapter").mkdir(parents=True)
        save_config(load_config(overrides=["data.schema_format=compact"]), run / "config.yaml")
        if name == "old":  # as written before versions existed
            raw = yaml.safe_load((run / "config.yaml").read_text())
            del raw["data"]["schema_format_version"]
            (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        ref = resolve_ref(str(run))
        prompts[name] = sql_prompt(ddl, "How many?", "chatml", schema_format=ref.schema_format,
                                   schema_format_version=ref.schema_format_version)
    assert ddl in prompts["old"]
    assert "a(x int)\nb(y int)" in prompts["new"] and "CREATE" not in prompts["new"]
