"""How well synthesized databases exercise Spider gold SQL: runs, returns rows, tells right from wrong.

    python benchmarks/synth_coverage.py [--n 300] [--seed 0] [--baseline] [--out synth_coverage.json]
Samples spider_train records, builds one synthesized set per db_id holding all its sampled gold queries
(sqlft.sql.synth.synthesize, into a fresh temp folder so build times are real) and checks each gold (check_gold).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlft.sql.gold_check import check_gold
from sqlft.sql.synth import synthesize
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import print_machine  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider_train" / "spider_train.jsonl"


def measure(by_db: dict[str, list[dict]], args: argparse.Namespace, out_dir: Path, with_gold: bool) -> dict:
    """Build and check every db; with_gold=False builds from the DDL alone (plain random data, the baseline)."""
    checks, build_s, errors = [], [], collections.Counter()
    for db_id, records in sorted(by_db.items()):
        golds = [r["answer"] for r in records]
        start = time.perf_counter()
        paths = synthesize(records[0]["context"], golds if with_gold else [], instances=args.instances,
                           rows_per_table=args.rows, seed=args.seed,
                           out_dir=out_dir / ("gold" if with_gold else "plain"))
        build_s.append(time.perf_counter() - start)
        for gold in golds:
            check = check_gold(paths, gold, "sqlite")
            checks.append(check)
            for e in check.errors:
                if e:
                    errors[e[:90]] += 1
                    break
    n = len(checks)
    return {
        "queries": n,
        "dbs": len(by_db),
        "executes": sum(all(c.runs) for c in checks) / n,
        "nonempty_any": sum(any(c.nonempty) for c in checks) / n,
        "nonempty_all": sum(all(c.nonempty) for c in checks) / n,
        "discriminating": sum(c.discriminating for c in checks) / n,
        "varies": sum(c.varies for c in checks) / n,
        "build_s_mean": statistics.mean(build_s),
        "build_s_median": statistics.median(build_s),
        "build_s_max": max(build_s),
        "top_errors": errors.most_common(8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="records sampled from spider_train")
    parser.add_argument("--seed", type=int, default=0, help="sampling and synthesis seed")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12, help="rows_per_table")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--baseline", action="store_true", help="also measure plain random data (no gold literals)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    print_machine("fp32")  # figures name the machine they were measured on

    records = [json.loads(line) for line in args.data.open()]
    sample = random.Random(args.seed).sample(records, min(args.n, len(records)))
    by_db: dict[str, list[dict]] = collections.defaultdict(list)
    for record in sample:
        by_db[record["db_id"]].append(record)

    results = {}
    with tempfile.TemporaryDirectory(prefix="synth_coverage_") as tmp:
        results["synth"] = measure(by_db, args, Path(tmp), with_gold=True)
        if args.baseline:
            results["plain_random"] = measure(by_db, args, Path(tmp), with_gold=False)

    keys = ["executes", "nonempty_any", "nonempty_all", "discriminating", "varies"]
    print(f"{len(sample)} records, {len(by_db)} dbs, {args.instances} instances x {args.rows}+ rows, seed {args.seed}")
    print(f"{'':14}" + "".join(f"{k:>16}" for k in keys) + f"{'build s/db (mean/med/max)':>30}")
    for name, r in results.items():
        build = f"{r['build_s_mean']:.3f}/{r['build_s_median']:.3f}/{r['build_s_max']:.3f}"
        print(f"{name:14}" + "".join(f"{r[k]:>16.1%}" for k in keys) + f"{build:>30}")
    for name, r in results.items():
        print(f"\n{name}: most frequent first errors")
        for message, count in r["top_errors"]:
            print(f"  {count:4}  {message}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}, indent=2))


if __name__ == "__main__":
    main()
