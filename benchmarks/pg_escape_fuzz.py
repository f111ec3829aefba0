"""The PostgreSQL differential fuzz of tests/test_pg_escapes.py at a larger count (CI runs 150 cases).

    python benchmarks/pg_escape_fuzz.py --cases 3000

Starts a throwaway cluster (tests/pg_cluster.py), writes queries from the tests' grammar (comments nested and not,
quoting, dollar quotes, casts, attribute calls, schema-qualified calls, CTE shadowing) and, for each query the check
accepts, asks PostgreSQL for its plan as a SELECT-only role: the plan must reference only the tables and functions
the check saw. Prints how many were refused by the check, refused by the server, and accepted and verified.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.machine import print_machine
    print_machine()
    env = {**os.environ, "SQLFT_FUZZ_CASES": str(args.cases)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
                           "tests/test_pg_escapes.py", "-k", "differential"], cwd=ROOT, env=env)
    print(f"{args.cases} generated queries in {time.perf_counter() - started:.0f} s: "
          f"{'no escape found' if done.returncode == 0 else 'AN ESCAPE WAS FOUND (see above)'}")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
