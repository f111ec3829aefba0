"""sqlft.sql.database: every source kind (SQLite, PostgreSQL dump, DuckDB file, defog name) built from tiny real files,
the cache (built once, atomically), schema DDL, and the error messages."""

import datetime
import sqlite3
from pathlib import Path

import duckdb
import pytest
from conftest import shared_data

from sqlft.sql.database import (DatabaseError, defog_database_names, prepare_database, schema_ddl,
                           table_names)

# A pg_dump-style script: noise to skip, a ';' inside a string, COPY data with NULLs and escapes, a primary key
# added after the data, a foreign key, and a statement that spans lines.
PG_DUMP = r"""--
-- PostgreSQL database dump
--
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
\restrict abc123

CREATE TABLE public.city (
    city_id bigint NOT NULL,
    name text,
    area double precision,
    founded date
);

ALTER TABLE public.city OWNER TO postgres;

CREATE TABLE public.note (
    id integer DEFAULT nextval('public.note_id_seq'::regclass) NOT NULL,
    city_id bigint,
    body text DEFAULT ''::text
);

COPY public.city (city_id, name, area, founded) FROM stdin;
1	Springfield	12.5	1850-03-01
2	Shelby\tville	\N	\N
\.

INSERT INTO public.note (id, city_id, body) VALUES (1, 1, 'semi; colon'), (2, 2, 'it''s /* not a comment */');
INSERT INTO public.note (id, city_id, body)
    VALUES (3, 1, E'line\nbreak');

ALTER TABLE ONLY public.city
    ADD CONSTRAINT city_pkey PRIMARY KEY (city_id);
ALTER TABLE ONLY public.note
    ADD CONSTRAINT note_city_fkey FOREIGN KEY (city_id) REFERENCES public.city(city_id);
GRANT ALL ON SCHEMA public TO PUBLIC;
"""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SQLFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "databases"


def rows(db_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_postgres_dump(tmp_path, cache):
    dump = tmp_path / "town.sql"
    dump.write_text(PG_DUMP)
    db_path = prepare_database(dump)
    assert db_path.parent == cache and db_path.suffix == ".duckdb"
    assert table_names(db_path) == ["city", "note"]
    assert rows(db_path, "SELECT * FROM city ORDER BY city_id") == [
        (1, "Springfield", 12.5, datetime.date(1850, 3, 1)), (2, "Shelby\tville", None, None)]
    assert rows(db_path, "SELECT body FROM note ORDER BY id") == [
        ("semi; colon",), ("it's /* not a comment */",), ("line\nbreak",)]
    assert schema_ddl(db_path) == (
        "CREATE TABLE city (city_id BIGINT, name VARCHAR, area DOUBLE, founded DATE, PRIMARY KEY (city_id));\n"
        "CREATE TABLE note (id INTEGER, city_id BIGINT, body VARCHAR);")
    assert dump.read_text() == PG_DUMP  # the source is never written to


def test_sqlite_file(tmp_path):
    source = tmp_path / "shop.db"  # not .sqlite: the header decides
    con = sqlite3.connect(source)
    con.executescript("""
        CREATE TABLE "order" (id INTEGER PRIMARY KEY, item TEXT, price REAL, qty, note VARCHAR(10));
        INSERT INTO "order" VALUES (1, 'pen', 1.5, 2, 'a'), (2, 'ink', 3, 'many', NULL), (3, NULL, NULL, NULL, 'c');
        CREATE TABLE loose (code TEXT PRIMARY KEY, n INT);
        INSERT INTO loose VALUES (NULL, 1), ('x', 2);
    """)
    con.commit()
    con.close()
    before = source.read_bytes()
    db_path = prepare_database(source)
    # Columns typed by what SQLite holds: a mixed column becomes text; a NULL "primary key" is dropped.
    assert schema_ddl(db_path) == (
        'CREATE TABLE loose (code VARCHAR, n BIGINT);\n'
        'CREATE TABLE "order" (id BIGINT, item VARCHAR, price DOUBLE, qty VARCHAR, note VARCHAR, PRIMARY KEY (id));')
    assert rows(db_path, 'SELECT * FROM "order" ORDER BY id') == [
        (1, "pen", 1.5, "2", "a"), (2, "ink", 3.0, "many", None), (3, None, None, None, "c")]
    assert source.read_bytes() == before


def test_duckdb_file_is_used_as_is(tmp_path):
    path = tmp_path / "own.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b VARCHAR)")
    assert prepare_database(path) == path.resolve()
    assert schema_ddl(path, ["t"]) == "CREATE TABLE t (a INTEGER, b VARCHAR, PRIMARY KEY (a));"


def test_defog_database():
    assert defog_database_names() == ["academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp"]
    db_path = prepare_database("restaurants")
    assert table_names(db_path) == ["geographic", "location", "restaurant"]
    assert rows(db_path, "SELECT COUNT(*) FROM restaurant") == [(11,)]
    # Tables come in the order asked for; it is the context of a training record.
    assert schema_ddl(db_path, ["restaurant", "location"]) == (
        "CREATE TABLE restaurant (id BIGINT, name VARCHAR, food_type VARCHAR, city_name VARCHAR, rating FLOAT);\n"
        "CREATE TABLE location (restaurant_id BIGINT, house_number BIGINT, street_name VARCHAR, city_name VARCHAR);")
    assert "PRIMARY KEY (aid)" in schema_ddl(prepare_database("academic"), ["author"])


def test_built_once_and_reused(tmp_path, cache):
    dump = tmp_path / "town.sql"
    dump.write_text(PG_DUMP)
    first = prepare_database(dump)
    mtime = first.stat().st_mtime_ns
    assert prepare_database(dump) == first and first.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in cache.iterdir()) == [first.name]  # no temp or .wal files left
    dump.write_text(PG_DUMP.replace("Springfield", "Capital City"))  # new content, new file
    assert prepare_database(dump) != first


def test_errors(tmp_path, cache):
    with pytest.raises(DatabaseError, match="not found"):
        prepare_database(tmp_path / "missing.sqlite")
    with pytest.raises(DatabaseError, match="Did you mean 'academic'"):
        prepare_database("acadmic")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(DatabaseError, match="not a DuckDB or SQLite database"):
        prepare_database(junk)
    with pytest.raises(DatabaseError, match=r"No table 'flights' in .*atis.*\. Did you mean 'flight'\?"):
        schema_ddl(prepare_database("atis"), ["flights"])


def test_bad_dump_names_the_statement_and_leaves_nothing(tmp_path, cache):
    dump = tmp_path / "bad.sql"
    dump.write_text("CREATE TABLE t (a integer);\n\nINSERT INTO t VALUES (1);\nINSERT INTO nowhere VALUES (2);\n")
    with pytest.raises(DatabaseError, match=r"bad.sql, line 4: `INSERT INTO nowhere VALUES \(2\)`"):
        prepare_database(dump)
    assert not cache.exists() or not any(cache.iterdir())
    empty = tmp_path / "empty.sql"
    empty.write_text("SET x = 1;\n")
    with pytest.raises(DatabaseError, match="No CREATE TABLE"):
        prepare_database(empty)


def test_real_defog_dumps_with_inserts():
    """An INSERT-style dump of ../shared/data with its own schema (consumer_div), where present."""
    dump = shared_data("defog", "databases", "ewallet.sql")
    db_path = prepare_database(dump)
    assert "consumer_div.users" in table_names(db_path)
    assert rows(db_path, "SELECT COUNT(*) FROM consumer_div.users")[0][0] > 0


def test_dump_cannot_reach_files(tmp_path):
    dump = tmp_path / "sneaky.sql"
    dump.write_text("CREATE TABLE t (line text);\nINSERT INTO t SELECT * FROM read_csv('/etc/hostname');\n")
    with pytest.raises(DatabaseError, match="line 2"):
        prepare_database(dump)
