"""Load test of `POST /sql` on 127.0.0.1: latency percentiles, errors and throughput per concurrency level,
micro-batching on vs off side by side. Bounded: R requests per client per level and a deadline per level.

    python benchmarks/serve_load.py --threads 1                      # embedded SmolLM2, max_new_tokens 16
    python benchmarks/serve_load.py --fake                           # fake model: 0.2 s per call + 0.02 s/prompt
    python benchmarks/serve_load.py --concurrency 1,4,16 --modes on --out load.json

The server runs in this process (uvicorn in a thread, the model in the batcher's thread); clients are asyncio
tasks with httpx. Closed loop: each of C clients sends its next request when the last one is answered.

Settings compared side by side (how the serve defaults were chosen, serve/settings.py):

    python benchmarks/serve_load.py --compare default,threads1,spin-wait --rounds 2

starts one real `sqlft serve` process per candidate (its flags and environment in CANDIDATES, the embedded
SmolLM2 unless --fake), then, for each round, quiet and with a CPU-burning child process beside them (started
and stopped here), at 1 and 8 concurrent clients, measures /sql (execute: true) on every candidate in turn,
the order rotated each round, so that the candidates share whatever else the machine is doing. Prints p50 /
p95 per cell and each candidate's p50 over the best one's.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass

import httpx

from serve.app import create_app, load_backend
from serve.settings import Settings
from serve.testing import FakeBackend, running_server
from sqlft.config import EMBEDDED_MODEL
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import print_machine  # noqa: E402

QUESTIONS = [
    "Write a SQL query that counts the restaurants.",
    "Write a SQL query that lists the restaurants in San Francisco.",
    "Write a SQL query that gives the average rating per city.",
    "Write a SQL query that finds the best rated restaurant.",
]


@dataclass
class Level:
    mode: str  # "on" | "off" (micro-batching)
    concurrency: int
    requests: int  # answered (any status)
    errors: int  # non-200 answers and client-side failures
    seconds: float  # wall time of the level
    throughput: float  # 200 answers per second
    p50: float
    p95: float
    p99: float
    mean_batch: float  # prompts per generate call during the level


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


async def run_level(url: str, concurrency: int, rounds: int, deadline_s: float, body: dict) -> tuple[list, int, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + deadline_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def worker(i: int) -> None:
            nonlocal errors
            for r in range(rounds):
                if time.monotonic() > stop_at:  # bounded in time as well as in count
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/sql", json=body | {"question": QUESTIONS[(i + r) % len(QUESTIONS)]})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return latencies, errors, time.perf_counter() - start


def run_mode(mode: str, args: argparse.Namespace) -> list[Level]:
    settings = Settings(model=args.model, demo_databases=False, database=[args.database], batching=mode == "on",
                        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_new_tokens=args.max_new_tokens,
                        max_concurrency=max(args.concurrency) * 2, request_timeout_s=600, torch_threads=args.threads)
    backend = FakeBackend(delay_s=0.2, per_prompt_s=0.02) if args.fake else None
    app = create_app(settings, load_backend=(lambda s: backend) if args.fake else load_backend)
    body = {"database": args.database, "max_new_tokens": args.max_new_tokens}
    levels = []
    with running_server(app, ready_timeout_s=300) as url:
        asyncio.run(run_level(url, 1, 1, 60, body))  # warm-up: first-call costs out of the figures
        batcher = app.state.sqlft.batcher
        for c in args.concurrency:
            calls, prompts = batcher.batches, batcher.prompts
            latencies, errors, seconds = asyncio.run(run_level(url, c, args.rounds, args.level_deadline, body))
            calls, prompts = batcher.batches - calls, batcher.prompts - prompts
            level = Level(mode, c, len(latencies) + errors, errors, round(seconds, 2),
                          round(len(latencies) / seconds, 3), *(round(percentile(latencies, q), 2) for q in (50, 95, 99)),
                          round(prompts / calls, 2) if calls else 0.0)
            levels.append(level)
            print(f"  batching {mode:3} c={c:<3} n={level.requests:<4} err={errors:<3} {level.throughput:6.2f} req/s  "
                  f"p50 {level.p50:6.2f}s  p95 {level.p95:6.2f}s  p99 {level.p99:6.2f}s  batch {level.mean_batch}",
                  flush=True)
    return levels


def report(levels: list[Level]) -> str:
    by = {(lv.mode, lv.concurrency): lv for lv in levels}
    lines = ["| C | on: req/s | on: p50 / p95 / p99 s | on: batch | off: req/s | off: p50 / p95 / p99 s | "
             "errors on/off | throughput on/off | p50 off/on |", "|" + "---|" * 9]
    for c in sorted({lv.concurrency for lv in levels}):
        on, off = by.get(("on", c)), by.get(("off", c))

        def cells(lv):
            return ("-", "-", "-") if lv is None else (f"{lv.throughput:.2f}", f"{lv.p50:.2f} / {lv.p95:.2f} / "
                                                       f"{lv.p99:.2f}", f"{lv.mean_batch}")
        ratio = f"{on.throughput / off.throughput:.2f}x" if on and off and off.throughput else "-"
        p50 = f"{off.p50 / on.p50:.2f}x" if on and off and on.p50 else "-"
        errors = f"{on.errors if on else '-'} / {off.errors if off else '-'}"
        lines.append(f"| {c} | {cells(on)[0]} | {cells(on)[1]} | {cells(on)[2]} | {cells(off)[0]} | {cells(off)[1]} "
                     f"| {errors} | {ratio} | {p50} |")
    return "\n".join(lines)


CORES = os.cpu_count() or 1
SQLFT = Path(sys.executable).with_name("sqlft")
# name -> (flags, environment) of a `sqlft serve` process; "default" is the flags as shipped.
CANDIDATES: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "threads1": (["--threads", "1"], {}),
    f"threads{CORES}": (["--threads", str(CORES)], {}),  # one per core, fixed: the default before free-core threads
    "spin-wait": (["--spin-wait"], {}),  # the default before issue 26: one thread per core, spinning
    f"threads{CORES}-spin10k": (["--spin-wait"], {"GOMP_SPINCOUNT": "10000"}),  # a short spin, then sleep
    "threads1-spin": (["--threads", "1", "--spin-wait"], {}),
    "no-batching": (["--no-batching"], {}),
    "execute-workers1": (["--execute-workers", "1"], {}),
    "execute-workers8": (["--execute-workers", "8"], {}),
}
BURNER = "while True:\n    pass\n"  # another process busy on the same cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str, args: argparse.Namespace, log_dir: Path) -> tuple[subprocess.Popen, str]:
    flags, env = CANDIDATES[name]
    port = free_port()
    backend = ["--backend", "fake"] if args.fake else [args.model] if args.model != EMBEDDED_MODEL else []
    # Only what the benchmark needs beside the candidate's flags: a port, one database, a quiet log.
    command = [str(SQLFT), "serve", *backend, "--port", str(port), "--no-demo-databases", "--database",
               f"{args.database}={args.database}", "--log-level", "warning", "--max-concurrency", "64",
               "--data-dir", str(log_dir / f"data-{name}"), *flags]
    log = open(log_dir / f"{name}.log", "w")
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(servers: dict[str, tuple[subprocess.Popen, str]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for name, (process, url) in servers.items():
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server {name} exited ({process.returncode}): see its log")
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server {name} not ready after {timeout_s:.0f} s")
            time.sleep(1)


def compare(args: argparse.Namespace) -> None:
    names = args.compare.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}: choose from {', '.join(CANDIDATES)}")
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    body = {"database": args.database, "max_new_tokens": args.max_new_tokens, "execute": True}
    levels = [int(c) for c in args.compare_concurrency.split(",")]
    servers = {name: start_server(name, args, log_dir) for name in names}
    burner = None
    latencies: dict[tuple[str, int, str], list[float]] = {}
    errors: dict[tuple[str, int, str], int] = {}
    started = time.perf_counter()
    try:
        wait_ready(servers, 600)
        for name, (_, url) in servers.items():  # warm-up: first-call costs out of the figures
            asyncio.run(run_level(url, 1, 1, 120, body))
        print(f"{len(servers)} servers ready after {time.perf_counter() - started:.0f} s", flush=True)
        for r in range(args.rounds):
            for condition in ("quiet", "busy"):
                if condition == "busy":
                    burner = subprocess.Popen([sys.executable, "-c", BURNER])
                    time.sleep(1)
                for c in levels:
                    order = names[r % len(names):] + names[:r % len(names)]
                    for name in order:
                        requests = args.c1_requests if c == 1 else 1
                        found, failed, _ = asyncio.run(run_level(servers[name][1], c, requests,
                                                                 args.level_deadline, body))
                        latencies.setdefault((condition, c, name), []).extend(found)
                        errors[(condition, c, name)] = errors.get((condition, c, name), 0) + failed
                        print(f"  round {r + 1} {condition:5} c={c} {name:18} p50 {percentile(found, 50):6.2f} s "
                              f"({len(found)} ok, {failed} errors)", flush=True)
                if burner is not None:
                    burner.kill()
                    burner.wait()
                    burner = None
    finally:
        if burner is not None:
            burner.kill()
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    table = compare_table(names, levels, latencies, errors)
    print(f"\n{table}\n\ntotal {time.perf_counter() - started:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "latencies": {"|".join(map(str, k)): v for k, v in latencies.items()},
                       "errors": {"|".join(map(str, k)): v for k, v in errors.items()}}, f, indent=1)


def compare_table(names: list[str], levels: list[int], latencies: dict, errors: dict) -> str:
    """One row per condition and concurrency: each candidate's p50 / p95 (s), and its p50 over the best p50."""
    lines = ["| condition | clients | " + " | ".join(f"{n}: p50 / p95 s" for n in names) + " | best | "
             + " | ".join(f"{n} / best" for n in names) + " |", "|" + "---|" * (3 + 2 * len(names))]
    for condition in ("quiet", "busy"):
        for c in levels:
            p50 = {n: percentile(latencies.get((condition, c, n), []), 50) for n in names}
            cells = [f"{p50[n]:.2f} / {percentile(latencies.get((condition, c, n), []), 95):.2f}"
                     + (f" ({errors[(condition, c, n)]} err)" if errors.get((condition, c, n)) else "")
                     for n in names]
            # A candidate without one answer (all errors) cannot be the best; its ratio is then "-".
            best = min(names, key=lambda n: (p50[n] != p50[n], p50[n]))
            ratios = [f"{p50[n] / p50[best]:.2f}x" if p50[n] == p50[n] else "-" for n in names]
            lines.append(f"| {condition} | {c} | {' | '.join(cells)} | {best} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=EMBEDDED_MODEL)
    p.add_argument("--fake", action="store_true", help="fake model (0.2 s per generate call + 0.02 s per prompt)")
    p.add_argument("--database", default="restaurants", help="registered database the questions are about")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--rounds", type=int, help="requests per client per level (default: 1, with --fake 4)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: one per core)")
    p.add_argument("--level-deadline", type=float, default=60.0, help="no new requests after this many seconds")
    p.add_argument("--modes", default="on,off", help="micro-batching on, off, or both")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    p.add_argument("--out", help="also write the figures as JSON here")
    p.add_argument("--compare", help="compare `sqlft serve` settings side by side: names from CANDIDATES, "
                   "comma-separated (e.g. default,threads1,spin-wait)")
    p.add_argument("--compare-concurrency", default="1,8", help="with --compare: client counts")
    p.add_argument("--c1-requests", type=int, default=3, help="with --compare: requests per 1-client level")
    p.add_argument("--log-dir", default="/tmp/sqlft-serve-compare", help="with --compare: server logs")
    args = p.parse_args(argv)
    print_machine("auto")  # figures name the machine they were measured on
    if args.compare:
        args.rounds = args.rounds or 2
        compare(args)
        return
    args.rounds = args.rounds or (4 if args.fake else 1)

    started = time.perf_counter()
    levels = []
    for mode in args.modes.split(","):
        print(f"batching {mode}: {'fake model' if args.fake else args.model}, max_new_tokens {args.max_new_tokens}",
              flush=True)
        levels += run_mode(mode, args)
    print(f"\n{report(levels)}\n\ntotal {time.perf_counter() - started:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "levels": [asdict(lv) for lv in levels]}, f, indent=1)


if __name__ == "__main__":
    main()
