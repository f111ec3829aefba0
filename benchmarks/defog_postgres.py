"""Defog's questions scored on a live PostgreSQL and on DuckDB, with the gold SQL as predictions (no model).

    python benchmarks/defog_postgres.py [--defog ../shared/data/defog] [--out runs/eval/defog-postgres] [--limit N]

Starts a throwaway PostgreSQL cluster (tests/pg_cluster.py), loads each dump of ../shared/data/defog/databases
into its own database with psql, adds a SELECT-only role, then runs `sqlft eval --predictions` twice: with
--db-root the server's URL (PostgreSQL, where Defog's gold was written) and with --db-root the dump folder
(DuckDB, sqlft's default for dumps). Prints both summaries and every example whose verdict differs, then
runs each question's first gold query on both engines and counts the results that agree (sqlft.sql.compare, strict
mode; order matters when the query has ORDER BY): how faithful the DuckDB path is to PostgreSQL.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import run as eval_run  # noqa: E402
from sqlft.sql.compare import compare_results  # noqa: E402
from sqlft.sql.engine import open_sandbox, to_engine  # noqa: E402
from sqlft.sql.database import column_names, prepare_database  # noqa: E402
from sqlft.sql.dialect import has_order_by  # noqa: E402
from sqlft.data.examples import expand_alternatives  # noqa: E402
from tests.pg_cluster import throwaway_cluster  # noqa: E402
from machine import print_machine  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DEFOG = ROOT.parent / "shared" / "data" / "defog"


def write_predictions(csv_path: Path, out: Path, limit: int) -> Path:
    """One line per question: every accepted gold query, and the first of them as the prediction."""
    path = out / "gold_as_predictions.jsonl"
    with open(csv_path, encoding="utf-8-sig", newline="") as f, open(path, "w") as w:
        for i, row in enumerate(csv.DictReader(f)):
            if limit and i >= limit:
                break
            golds = expand_alternatives(row["query"])
            w.write(json.dumps({"id": str(i), "db_id": row["db_name"], "question": row["question"],
                                "gold_sql": golds, "pred_sql": golds[0], "category": row["query_category"]}) + "\n")
    return path


def score(predictions: Path, db_root: str, out: Path) -> list[dict]:
    args = eval_run.parse_args(["--predictions", str(predictions), "--db-root", db_root, "--dialect", "postgres",
                                "--mode", "strict", "--out", str(out), "--workers", "2"])
    eval_run.run(args)
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/eval/defog-postgres")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--defog", type=Path, default=DEFOG, help="folder with questions/ and databases/ "
                   "(default %(default)s)")
    args = p.parse_args()
    print_machine("fp32")  # model-free: the precision does not apply
    defog = args.defog
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions = write_predictions(defog / "questions" / "questions_gen_postgres.csv", out, args.limit)
    dumps = sorted((defog / "databases").glob("*.sql"))
    with throwaway_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        for dump in dumps:
            cluster.psql(f"CREATE DATABASE {dump.stem}")
            cluster.psql("", db=dump.stem, file=dump)
        cluster.psql("CREATE ROLE reader LOGIN PASSWORD 'reader'")
        for dump in dumps:  # SELECT on every table of every schema (ewallet's are in consumer_div), nothing else
            cluster.psql("DO $$DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT "
                         "LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP EXECUTE format('GRANT USAGE ON "
                         "SCHEMA %I TO reader; GRANT SELECT ON ALL TABLES IN SCHEMA %I TO reader', s, s); END LOOP; "
                         "END$$", db=dump.stem)
        pgpass = Path(tmp) / "pgpass"  # the password from a .pgpass file, never in the URL
        pgpass.write_text(f"127.0.0.1:{cluster.port}:*:reader:reader\n")
        pgpass.chmod(0o600)
        os.environ["PGPASSFILE"] = str(pgpass)
        root = f"postgresql://reader@127.0.0.1:{cluster.port}/"
        on_postgres = score(predictions, root, out / "postgres")
        on_duckdb = score(predictions, str(defog / "databases"), out / "duckdb")
        same, compared, differ_rows = cross_check(predictions, root, defog / "databases")
    print("postgres:", dict(Counter(r["status"] for r in on_postgres)))
    print("duckdb:  ", dict(Counter(r["status"] for r in on_duckdb)))
    differ = [(a, b) for a, b in zip(on_postgres, on_duckdb) if a["status"] != b["status"]]
    print(f"{len(differ)} of {len(on_postgres)} verdicts differ:")
    for a, b in differ:
        print(f"- #{a['id']} {a['db_id']}: postgres {a['status']} {a['reason'][:150]!r} | duckdb {b['status']} "
              f"{b['reason'][:200]!r}\n    {a['gold_sql'][:200]}")


    print(f"gold results: DuckDB agrees with PostgreSQL on {same} of {compared} queries that run on both")
    for line in differ_rows:
        print("  differs:", line)


def cross_check(predictions: Path, root: str, dumps: Path) -> tuple[int, int, list[str]]:
    """(agreeing, compared, the differing queries): first gold query of each question on both engines."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    same = compared = 0
    differ = []
    for db in sorted({r["db_id"] for r in rows}):
        try:
            path = prepare_database(dumps / f"{db}.sql")
        except Exception:  # noqa: BLE001 - a dump DuckDB cannot load: counted by the eval above
            continue
        columns = column_names(path)
        with open_sandbox(root + db, "postgres") as pg_box, open_sandbox(path, "duckdb") as duck_box:
            for r in (r for r in rows if r["db_id"] == db):
                sql = r["gold_sql"][0]
                a, b = pg_box.execute(sql), duck_box.execute(to_engine(sql, "postgres", "duckdb", columns))
                if a.status != "ok" or b.status != "ok":
                    continue
                compared += 1
                if compare_results(a, b, order_matters=has_order_by(sql, "postgres"), mode="strict"):
                    same += 1
                else:
                    differ.append(f"#{r['id']} {db}: {sql[:160]} | pg {a.rows[:2]} | duckdb {b.rows[:2]}")
    return same, compared, differ


if __name__ == "__main__":
    main()
