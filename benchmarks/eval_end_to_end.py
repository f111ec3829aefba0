"""`sqlft eval --predictions`, the whole command (process start to report written), against the official Spider
evaluator on the same pairs: each side a fresh process, run alternately, the machine printed.

    .venv/bin/python benchmarks/eval_end_to_end.py [--dbs 40] [--questions-per-db 80] [--rounds 3]
                                                   [--work /tmp/sqlft-e2e] [--out FILE.json]

Data (built once, cached under --work): Spider-style SQLite files from ../shared/data/spider_train schemas, rows
planted by sqlft.sql.synth (spider_faithfulness.build_sqlite), 10 to 5,000 rows per table (spread over the databases, most
databases small as in Spider: median ~50); pairs: every spider_train question of those databases whose gold runs
on its file (up to --questions-per-db), with one prediction, as a model's predictions file holds: the gold a third of
the time, else one of benchmarks/spider_faithfulness.py's perturbations of it (wrong ones and equivalent rewrites). Written as the official evaluator's gold and
pred files and as a sqlft predictions JSONL, with the databases under DB_ROOT/<db_id>/<db_id>.sqlite.

Timed, alternating, each in its own process:
  official  the port of test-suite-sql-eval's eval_exec_match (benchmarks/spider_faithfulness.official_verdict),
            one pair after another in one process as its evaluation.py loop runs them; timed from process start
            to its report written ("whole"), and its loop alone (imports and file reading left out: the port
            imports more than the original, so the loop alone is the fair, harder bar).
  sqlft     `.venv/bin/sqlft eval --predictions PRED.jsonl --db-root DB_ROOT --out OUT`, process start to report.
Printed per round and as medians: wall time (what a user waits for; on a shared machine it depends on the
other jobs, hence the alternation) and CPU time (user + system of the process and its children, which does not).
The EX figures of both sides are printed, with the pairs whose verdicts differ and sqlft's reason.
"""

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SQLFT = ROOT / ".venv" / "bin" / "sqlft"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "spider_train" / "spider_train.jsonl"


def rows_by_database(chosen: list[str], seed: int) -> dict[str, int]:
    """Rows per table for each database: 10 to 5,000, skewed small (u^2 on a log scale: median ~50). u is spread
    evenly over the databases in a seeded order, so the range is covered end to end: one database has 10 rows per
    table and one 5,000 (a random u per database left the largest at 4,647 in one run)."""
    order = list(chosen)
    random.Random(f"{seed}:rows").shuffle(order)
    last = max(len(order) - 1, 1)
    return {db_id: round(10 * 500 ** ((i / last) ** 2)) for i, db_id in enumerate(order)}


def build(args) -> dict:
    """The data files (cached): returns their paths and counts."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import spider_faithfulness as sf

    work = Path(args.work)
    db_root = work / "db"
    pred_jsonl, gold_txt, pred_txt = work / "predictions.jsonl", work / "gold.txt", work / "pred.txt"
    dbs = sf.load_records(Path(args.data))
    for line in open(args.data):  # every question's gold, repeats included (load_records keeps unique ones)
        record = json.loads(line)
        dbs[record["db_id"]].setdefault("questions", []).append(record["answer"])
    chosen = sorted(random.Random(args.seed).sample(sorted(dbs), min(args.dbs, len(dbs))))
    pairs, sizes = [], {}
    rows_of = rows_by_database(chosen, args.seed)
    for db_id in chosen:
        entry, rows = dbs[db_id], rows_of[db_id]
        target = db_root / db_id / f"{db_id}.sqlite"
        try:
            built = sf.build_sqlite(db_id, entry["ddl"], entry["golds"], work / f"rows{rows}", rows, args.seed)
        except Exception as err:  # noqa: BLE001 - a schema the synthesizer cannot build: left out
            print(f"left out {db_id}: {type(err).__name__}", file=sys.stderr)
            continue
        if not target.exists() or target.stat().st_size != built.stat().st_size:  # a cache of other sizes
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built, target)
        sizes[db_id] = table_rows(target)
        ctx = sf.Ctx(sf.sqlite_schema(target), target, random.Random(f"{args.seed}:{db_id}"))
        # One prediction per question, as a model's predictions file holds: the gold itself or an equivalent
        # rewrite a third of the time, else one of its perturbations (most wrong, some still equivalent).
        runs: dict[str, bool] = {}
        for gold in entry["questions"][:args.questions_per_db]:
            if gold not in runs:
                runs[gold] = sf.exec_on_db(target, sf.official_prepare(gold, gold)[0])[0] != "exception"
            if not runs[gold]:
                continue  # the official asserts on a gold that does not run
            options = sf.predictions(gold, ctx, 4)
            pred = gold if ctx.rng.random() < 0.35 or len(options) == 1 else ctx.rng.choice(options[1:])[1]
            pairs.append((db_id, gold, pred))
    # One line each, as the official files hold them: a newline inside a query would split it.
    pairs = [(d, " ".join(g.split()), " ".join(p.split())) for d, g, p in pairs]
    with open(pred_jsonl, "w") as f:
        for i, (db_id, gold, pred) in enumerate(pairs):
            f.write(json.dumps({"id": str(i), "db_id": db_id, "gold_sql": gold, "pred_sql": pred}) + "\n")
    gold_txt.write_text("".join(f"{gold}\t{db_id}\n" for db_id, gold, _ in pairs))
    pred_txt.write_text("".join(f"{pred}\n" for _, _, pred in pairs))
    all_rows = [n for tables in sizes.values() for n in tables.values()]
    return {"pairs": len(pairs), "databases": len(sizes), "db_root": str(db_root), "predictions": str(pred_jsonl),
            "gold": str(gold_txt), "pred": str(pred_txt),
            "rows_per_table": {"min": min(all_rows), "median": statistics.median(all_rows), "max": max(all_rows)},
            "rows_per_database": sorted(sum(t.values()) for t in sizes.values())}


def table_rows(path: Path) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()


def official_main(gold: str, pred: str, db_root: str, out: str) -> None:
    """The official side, in its own process: evaluation.py's loop over the gold and pred files, exec only."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import spider_faithfulness as sf

    began = time.perf_counter()
    golds = [line.rstrip("\n").split("\t") for line in open(gold) if line.strip()]
    preds = [line.rstrip("\n") for line in open(pred)][:len(golds)]
    scores = []
    for (g_str, db_id), p_str in zip(golds, preds):
        db = os.path.join(db_root, db_id, db_id + ".sqlite")
        scores.append(sf.official_verdict(db, p_str, g_str))
    kept = [s for s in scores if s is not None]
    loop_s = time.perf_counter() - began
    Path(out).write_text(json.dumps({"count": len(kept), "exec": sum(kept) / len(kept), "matches": sum(kept),
                                     "loop_s": loop_s, "scores": scores}))


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children): the CPU time does not depend on what else
    the machine runs, the wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_official(data: dict, out: Path) -> dict:
    whole, cpu = timed([sys.executable, __file__, "--official-run", data["gold"], data["pred"], data["db_root"],
                        str(out)])
    found = json.loads(out.read_text())
    return {"whole_s": whole, "cpu_s": cpu, "loop_s": found["loop_s"], "matches": found["matches"],
            "count": found["count"], "scores": found["scores"]}


def time_sqlft(data: dict, out: Path, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    whole, cpu = timed([str(SQLFT), "eval", "--predictions", data["predictions"], "--db-root", data["db_root"],
                        "--out", str(out), *extra])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {"whole_s": whole, "cpu_s": cpu, "matches": sum(r["status"] == "match" for r in rows),
            "gold_errors": sum(r["status"] == "gold_error" for r in rows), "count": len(rows),
            "verdicts": [r["status"] == "match" for r in rows],
            "reasons": [r["reason"] for r in rows]}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--official-run"]:
        official_main(*argv[1:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--dbs", type=int, default=40)
    parser.add_argument("--questions-per-db", type=int, default=80, help="spider_train questions per database")
    parser.add_argument("--rounds", type=int, default=3, help="official/sqlft alternations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/sqlft-e2e", help="where databases and pair files are built (cached)")
    parser.add_argument("--sqlft-args", default="", help="extra flags for sqlft eval (e.g. '--workers 1')")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        sys.exit(f"{args.data} is absent: this benchmark needs ../shared/data (or --data)")
    sys.path.insert(0, str(HERE))
    from machine import print_machine

    machine = print_machine("fp32")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    data = build(args)  # not timed
    print(f"{data['pairs']} pairs on {data['databases']} SQLite databases; rows per table "
          f"{data['rows_per_table']['min']}-{data['rows_per_table']['max']} (median {data['rows_per_table']['median']}),"
          f" rows per database {data['rows_per_database'][0]}-{data['rows_per_database'][-1]}")
    work = Path(args.work)
    time_official(data, work / "official.json")  # warm the page cache and the interpreter's files for both
    official, ours = [], []
    for r in range(args.rounds):
        official.append(time_official(data, work / "official.json"))
        ours.append(time_sqlft(data, work / "sqlft-out", args.sqlft_args.split()))
        o, s = official[-1], ours[-1]
        print(f"round {r + 1}: official {o['whole_s']:6.2f} s whole ({o['loop_s']:6.2f} s loop, {o['cpu_s']:5.2f} s "
              f"CPU), sqlft {s['whole_s']:6.2f} s whole ({s['cpu_s']:5.2f} s CPU): x{o['whole_s'] / s['whole_s']:.2f}; "
              f"EX official {o['matches']}/{o['count']}, sqlft {s['matches']}/{s['count']} "
              f"({s['gold_errors']} gold errors)", flush=True)
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    o_whole, o_loop, s_whole = med(official, "whole_s"), med(official, "loop_s"), med(ours, "whole_s")
    o_cpu, s_cpu = med(official, "cpu_s"), med(ours, "cpu_s")
    ratios = sorted(o["whole_s"] / s["whole_s"] for o, s in zip(official, ours))
    n = data["pairs"]
    print(f"\nmedian of {args.rounds} rounds, {n} pairs:")
    print(f"  {'official port, whole process':34} {o_whole:7.2f} s  {n / o_whole:7.1f} pairs/s  CPU {o_cpu:6.2f} s")
    print(f"  {'official port, loop only':34} {o_loop:7.2f} s  {n / o_loop:7.1f} pairs/s")
    print(f"  {'sqlft eval --predictions, whole':34} {s_whole:7.2f} s  {n / s_whole:7.1f} pairs/s  CPU {s_cpu:6.2f} s")
    print(f"  throughput x{o_whole / s_whole:.2f} vs whole (per round x{ratios[0]:.2f} to x{ratios[-1]:.2f}), "
          f"x{o_loop / s_whole:.2f} vs loop only; CPU time x{o_cpu / s_cpu:.2f}")
    scores, verdicts = official[-1]["scores"], ours[-1]["verdicts"]
    differ = [i for i, (o, v) in enumerate(zip(scores, verdicts)) if o is not None and bool(o) != v]
    print(f"  EX official {official[-1]['matches']}/{n}, sqlft {ours[-1]['matches']}/{n}; verdicts differ on "
          f"{len(differ)} pairs" + "".join(f"\n    pair {i}: official {scores[i]}, sqlft: {ours[-1]['reasons'][i][:150]}"
                                            for i in differ[:5]))
    if args.out:
        for side in official + ours:
            side.pop("scores", None), side.pop("verdicts", None), side.pop("reasons", None)
        Path(args.out).write_text(json.dumps({
            "machine": machine, "data": data, "official": official, "sqlft": ours,
            "speedup_vs_whole": round(o_whole / s_whole, 2), "speedup_vs_loop": round(o_loop / s_whole, 2),
            "cpu_ratio": round(o_cpu / s_cpu, 2), "verdicts_differ": differ, "settings": vars(args)},
            indent=2, default=str))


if __name__ == "__main__":
    main()
