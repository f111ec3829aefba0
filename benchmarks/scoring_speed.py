"""Scoring speed against the official Spider evaluator: the same pairs, the same machine, timed side by side.

    python benchmarks/scoring_speed.py [--dbs 40] [--golds-per-db 15] [--preds-per-gold 6] [--workers N]
                                       [--profile FILE] [--out FILE.json]

Pairs: Spider-style SQLite files built from ../shared/data/spider_train schemas with planted rows, each gold paired
with itself and with perturbed predictions (benchmarks/spider_faithfulness.py: build_sqlite, predictions; the
FAITHFULNESS data). Timed, in this order and on the same warm files:
  official  the port of test-suite-sql-eval's eval_exec_match (spider_faithfulness.official_verdict), one pair
            after another as its evaluate() loop runs them (a connection per query);
  sqlft     what `sqlft eval --predictions` runs after loading: eval.run.prepare_instances + score_all +
            flag_non_discriminating, --workers threads.
Verdicts are compared pair by pair (sqlft "match" against the official 1). --profile writes cProfile statistics of
the sqlft scorer's worker threads (each thread profiles itself; the pool's waiting is not counted).
"""

import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spider_faithfulness as sf  # noqa: E402
from machine import print_machine  # noqa: E402

from eval import run as eval_run  # noqa: E402
from sqlft.data.examples import Example  # noqa: E402


def build_pairs(args) -> list[tuple[str, str, str, str]]:
    """(db_id, sqlite path, gold, pred) for pairs whose gold runs on SQLite (the official asserts otherwise)."""
    dbs = sf.load_records(Path(args.data))
    chosen = sorted(random.Random(args.seed).sample(sorted(dbs), min(args.dbs, len(dbs))))
    pairs = []
    for db_id in chosen:
        entry = dbs[db_id]
        try:
            path = sf.build_sqlite(db_id, entry["ddl"], entry["golds"], Path(args.work), 12, args.seed)
        except Exception as err:  # noqa: BLE001 - a schema the synthesizer cannot build: left out, as there
            print(f"left out {db_id}: {type(err).__name__}", file=sys.stderr)
            continue
        ctx = sf.Ctx(sf.sqlite_schema(path), path, random.Random(f"{args.seed}:{db_id}"))
        golds = list(entry["golds"])
        ctx.rng.shuffle(golds)
        used = 0
        for gold in golds:
            if used >= args.golds_per_db:
                break
            if sf.exec_on_db(path, sf.official_prepare(gold, gold)[0])[0] == "exception":
                continue
            used += 1
            pairs += [(db_id, str(path), gold, pred) for _, pred in sf.predictions(gold, ctx, args.preds_per_gold)]
    return pairs


def score_official(pairs) -> list[int | None]:
    return [sf.official_verdict(path, pred, gold) for _, path, gold, pred in pairs]


def score_sqlft(pairs, workers: int, profile: list | None = None) -> list[bool]:
    examples = [Example(id=str(i), question="", gold_sqls=[gold], db_id=db_id, database=path, pred_sql=pred)
                for i, (db_id, path, gold, pred) in enumerate(pairs)]
    scoring = eval_run.Scoring("sqlite", "spider", 0.0)
    instances = eval_run.prepare_instances(examples, "sqlite", 3, workers)
    rows = eval_run.score_all(examples, {}, instances, scoring, workers)
    for inst in instances.values():
        for box in inst.boxes:
            box.close()
    eval_run.flag_non_discriminating(rows, examples, instances, "sqlite", workers)
    return [row["status"] == "match" for row in rows]


class ThreadProfiles:
    """cProfile in every thread started while active (ThreadPoolExecutor workers included)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def __enter__(self):
        original = threading.Thread.run
        self._original = original
        profiles, lock = self.profiles, self._lock

        def run(thread):
            profile = cProfile.Profile()
            with lock:
                profiles.append(profile)
            profile.runcall(original, thread)
        threading.Thread.run = run
        return self

    def __exit__(self, *exc):
        threading.Thread.run = self._original

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        return stats


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(sf.DEFAULT_DATA))
    parser.add_argument("--dbs", type=int, default=40)
    parser.add_argument("--golds-per-db", type=int, default=15)
    parser.add_argument("--preds-per-gold", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", default="/tmp/sqlft-faithfulness", help="where SQLite files are built (cached)")
    parser.add_argument("--profile", help="write the worker threads' cProfile statistics (text) here")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        sys.exit(f"{args.data} is absent: this benchmark needs ../shared/data (or --data)")

    machine = print_machine("fp32")
    pairs = build_pairs(args)  # not timed: files are built once and cached under --work
    score_official(pairs[:50])  # warm the page cache for both sides
    start = time.perf_counter()
    official = score_official(pairs)
    official_s = time.perf_counter() - start
    if args.profile:
        with ThreadProfiles() as profiles:
            start = time.perf_counter()
            ours = score_sqlft(pairs, args.workers)
            ours_s = time.perf_counter() - start
        with open(args.profile, "w") as f:
            stats = profiles.stats()
            stats.stream = f
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)
        print(f"worker-thread profile -> {args.profile} (profiling slows the sqlft side)")
    else:
        start = time.perf_counter()
        ours = score_sqlft(pairs, args.workers)
        ours_s = time.perf_counter() - start

    kept = [(o, s) for o, s in zip(official, ours) if o is not None]
    agree = sum(int(s) == o for o, s in kept)
    figures = {"pairs": len(pairs), "databases": len({p[0] for p in pairs}), "official_matches": sum(o for o, _ in kept),
               "official_s": round(official_s, 2), "sqlft_s": round(ours_s, 2), "workers": args.workers,
               "speedup": round(official_s / ours_s, 2), "verdicts_agree": f"{agree}/{len(kept)}",
               "machine": machine, "settings": vars(args)}
    print(f"{len(pairs)} pairs on {figures['databases']} Spider-style SQLite databases "
          f"({figures['official_matches']} official matches)")
    print(f"  official eval_exec_match loop   {official_s:7.2f} s  {len(pairs) / official_s:7.1f} pairs/s")
    print(f"  sqlft scorer, {args.workers} worker(s)        {ours_s:7.2f} s  {len(pairs) / ours_s:7.1f} pairs/s  "
          f"x{official_s / ours_s:.2f}")
    print(f"  verdicts agree: {figures['verdicts_agree']}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
