"""Peak memory growth of the SQL worker per hostile query (issue 15): must stay under the memory limit.

    python benchmarks/hostile_memory.py [--memory-limit 1GB] [--rounds 2] [--raw] [--load N]

Default: each query through sqlft.sql.isolation.IsolatedExecutor, as `sqlft serve` runs it (checked SQL, bounded
worker), on a 6-row `singer` table in a DuckDB and a SQLite file. Growth is the worker's peak RSS (the kernel's
VmHWM, reset before each query) minus its RSS before the query, as IsolatedExecutor.last_peak_bytes.
--raw: the same DuckDB queries WITHOUT the SQL check (printf '*' widths and the like run), each in a fresh
process bounded as a worker is (sqlft.sql.isolation.bound_memory): what the engine and kernel bounds alone hold.
--load N: N busy-looping processes meanwhile (a loaded machine: the watcher polls late, the cap does not).
"""

import argparse
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
from machine import cpu_model  # noqa: E402

from sqlft.sql import isolation  # noqa: E402
from sqlft.sql.duckdb_sandbox import _CONNECT_CONFIG  # noqa: E402

LAMBDA_BOMB = ("SELECT len(flatten(flatten(list_transform(range(1000), lambda x: list_transform(range(1000), "
               "lambda y: range(30))))))")
CASES = [  # (name, engine, sql): the examples first, then more in the same spirit
    ("lambda_list_bomb", "duckdb", LAMBDA_BOMB),
    ("printf_star_width", "duckdb", "SELECT length(printf('%*d', 20000000, 1))"),
    ("format_nested_width", "duckdb", "SELECT format('{:>{}}', 'x', 20000000)"),
    ("printf_star_width_per_row", "duckdb", "SELECT printf('%*d', 20000000, singer_id) FROM singer"),
    ("printf_star_200M_per_row", "duckdb", "SELECT length(printf('%*d', 200000000, singer_id)) FROM singer"),
    ("string_doubling_cte", "duckdb", "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r "
     "WHERE length(s) < 2000000000) SELECT max(length(s)) FROM r"),
    ("list_of_lists_unnest", "duckdb", "SELECT count(*) FROM (SELECT unnest(list_transform(range(1000), lambda x: "
     "list_transform(range(1000), lambda y: y))) AS l)"),
    ("string_agg_growth", "duckdb", "SELECT length(string_agg(repeat(a.name, 1000), '')) FROM singer a, singer b, "
     "singer c, singer d, singer e, singer f, singer g"),
    ("sqlite_printf_star_precision", "sqlite", "SELECT length(printf('%.*c', 2000000000, 'x'))"),
    ("sqlite_printf_star_width_per_row", "sqlite", "SELECT printf('%*d', 20000000, singer_id) FROM singer"),
    ("sqlite_string_doubling", "sqlite", "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r) "
     "SELECT length(s) FROM r LIMIT 1 OFFSET 40"),
]


def build(folder: Path) -> dict[str, Path]:
    rows = [(i, f"singer {i}") for i in range(1, 7)]
    paths = {"duckdb": folder / "concert.duckdb", "sqlite": folder / "concert.sqlite"}
    with duckdb.connect(str(paths["duckdb"])) as con:
        con.execute("CREATE TABLE singer (singer_id INTEGER, name VARCHAR)")
        con.executemany("INSERT INTO singer VALUES (?, ?)", rows)
    with sqlite3.connect(paths["sqlite"]) as con:
        con.execute("CREATE TABLE singer (singer_id INTEGER, name TEXT)")
        con.executemany("INSERT INTO singer VALUES (?, ?)", rows)
    return paths


def one_raw(limit: int, db: str, sql: str) -> None:
    """In a fresh process: bounded as a worker is, the SQL run unchecked on DuckDB; one JSON line out."""
    memory_limit, cap = isolation.bound_memory(limit)
    with cap.lifted():  # as the worker opens a database
        con = duckdb.connect(db, read_only=True, config=dict(_CONNECT_CONFIG))
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET threads = 1")
    con.execute("SELECT count(*) FROM singer").fetchall()
    before = isolation._rss(os.getpid())
    isolation._reset_peak(os.getpid())
    timer = threading.Timer(5.0, con.interrupt)
    timer.start()
    status, size = "ok", 0
    try:
        cursor = con.execute(sql)
        while size < 16_000_000 and (chunk := cursor.fetchmany(100)):
            size += sum(len(str(v)) for row in chunk for v in row)
    except duckdb.OutOfMemoryException as e:
        status = "out of memory: " + str(e).splitlines()[0][:60]
    except MemoryError:
        status = "MemoryError"
    except duckdb.Error as e:
        status = "error: " + str(e).splitlines()[0][:60]
    timer.cancel()
    growth = isolation._status().get("VmHWM", 0) - before
    print(json.dumps({"status": status, "growth": growth}), flush=True)


def spin(stop) -> None:
    while not stop.is_set():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--raw", action="store_true", help="DuckDB queries unchecked, in bounded processes")
    parser.add_argument("--load", type=int, default=0, help="busy processes meanwhile")
    parser.add_argument("--one-raw", nargs=2, metavar=("DB", "SQL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit = isolation.parse_size(args.memory_limit)
    if args.one_raw:
        return one_raw(limit, *args.one_raw)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; memory limit {args.memory_limit}; "
          f"mode {'raw (unchecked SQL)' if args.raw else 'IsolatedExecutor'}; busy processes {args.load}")
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    worst = 0
    try:
        with tempfile.TemporaryDirectory() as folder, isolation.IsolatedExecutor(1, memory_limit=args.memory_limit,
                                                                                  max_result_bytes=16_000_000) as ex:
            paths = build(Path(folder))
            for name, engine, sql in CASES:
                for _ in range(args.rounds):
                    if args.raw:
                        if engine != "duckdb":
                            continue
                        start = time.perf_counter()
                        out = subprocess.run([sys.executable, __file__, "--memory-limit", args.memory_limit,
                                              "--one-raw", str(paths[engine]), sql], capture_output=True, text=True,
                                             timeout=120)
                        elapsed = time.perf_counter() - start
                        lines = out.stdout.strip().splitlines()
                        found = json.loads(lines[-1]) if lines else {"status": f"died rc={out.returncode}",
                                                                      "growth": 0}
                        status, growth = found["status"], found["growth"]
                    else:
                        result = ex.execute(paths[engine], sql, engine=engine, max_rows=100, timeout_s=5.0)
                        status, growth, elapsed = result.status, ex.last_peak_bytes, result.elapsed_s
                        status += f" ({result.error[:60]})" if result.error else ""
                    worst = max(worst, growth)
                    print(f"{name:34s} peak growth {growth / 1e6:8.1f} MB ({100 * growth / limit:5.1f}% of the "
                          f"limit)  {elapsed:5.2f} s  {status}", flush=True)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(f"worst: {worst / 1e6:.1f} MB = {100 * worst / limit:.1f}% of {args.memory_limit}")


if __name__ == "__main__":
    main()
