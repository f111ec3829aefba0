"""Issue 11's table: SFT, SFT then GRPO, and SFT for the same total time, each greedy and with voting over executed
results at N = 4 and 8, on Spider's held-out whole databases (synthesized instances) and on the demo set's real
defog databases. Every row is a real `sqlft eval` run in its own process.

    python benchmarks/grpo_voting.py --row "SFT recipe=runs/spider-sft" --row "SFT then GRPO=runs/spider-grpo" \
        --row "SFT, same total time=runs/spider-sft-long" --spider runs/spider-sft/validation.jsonl \
        --limit 200 --vote-limit 100 --out runs/grpo-voting

Voting at N = 8 samples 7 answers beside the greedy one. N = 4 reuses the greedy answer and the first 3 of those 7
samples (eval samples them one after the other with a fixed seed, so they are what an N = 4 run draws too; its
predictions are scored by `sqlft eval --candidates 4 --vote`); its generation seconds are derived: greedy + 3/7 of
the sampling time of the N = 8 run. Voting rows score the first --vote-limit questions; the greedy figures on the
same questions (read from the greedy run's results) are printed beside them.
A row whose OUT/.../report.json exists is read, not run again.

--repair scores every row with schema repair (`sqlft eval --repair`, sqlft/sql/repair.py) and also scores the same
answers without it (their predictions copied to a `-plain` folder, so nothing is generated twice): each decoding
row then reads "plain -> repaired".
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: sqlft
from machine import print_machine  # noqa: E402

from eval.report import summarize  # noqa: E402
from sqlft.config.run_folder import RunFolder  # noqa: E402


def sqlft_eval(model: str, data: str, out: Path, limit: int, extra: list[str]) -> dict:
    report = out / "report.json"
    if not report.is_file():
        command = [sys.executable, "-m", "sqlft.cli", "eval", model, "--data", data, "--out", str(out),
                   "--limit", str(limit), *extra]
        print("$ sqlft " + " ".join(command[3:]), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        (out / "wall_s.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return json.loads(report.read_text())


def derive_vote4(vote8: Path, vote4: Path) -> None:
    """vote4/predictions.jsonl: the greedy answer and the first 3 samples of each N = 8 line, with the settings file
    that `sqlft eval --candidates 4 --vote` expects, so that it scores them without generating."""
    copy_predictions(vote8, vote4, candidates=4)


def copy_predictions(source: Path, target: Path, candidates: int | None = None) -> None:
    """source's predictions and settings file in target, for `sqlft eval --out target` to score without generating;
    with `candidates`, each line cut to the greedy answer and its first candidates - 1 samples."""
    if (target / "predictions.jsonl").is_file():
        return
    target.mkdir(parents=True, exist_ok=True)
    meta = json.loads((source / "generation.json").read_text())
    lines = []
    for text in (source / "predictions.jsonl").read_text().splitlines():
        line = json.loads(text)
        if candidates:
            line["candidates"] = line["candidates"][:candidates - 1]
        lines.append(json.dumps(line, ensure_ascii=False))
    if candidates:
        assert meta["fingerprint"]["decoding"]["candidates"] >= candidates, meta
        meta["fingerprint"]["decoding"]["candidates"] = candidates
    (target / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    (target / "generation.json").write_text(json.dumps(meta, indent=2))


def greedy_subset(greedy: Path, voted: Path) -> dict:
    """The greedy run's figures on the questions a voting run scored (its first --vote-limit): the same answers,
    so they are read from its results rather than generated again, and summarized as `sqlft eval` summarizes."""
    ids = {row["id"] for row in read_jsonl(voted / "results.jsonl")}
    rows = [row for row in read_jsonl(greedy / "results.jsonl") if row["id"] in ids]
    seconds = sum(line.get("seconds", 0.0) for line in read_jsonl(greedy / "predictions.jsonl") if line["id"] in ids)
    return summarize(rows, settings={}, generation={"total_s": seconds})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def generation_s(report: dict) -> float:
    return report["generation"]["total_s"]


def n(report: dict) -> int:
    return report["counts"]["total"]


def cell(report: dict, plain: dict | None = None) -> str:
    """EX (right/scored); with `plain` (the same answers scored without repair): "plain -> repaired"."""
    def ex(r: dict) -> str:
        c = r["counts"]
        return f"{100 * r['execution_accuracy']:.1f}% ({c.get('match', 0)}/{c['total'] - c.get('gold_error', 0)})"
    return f"{ex(plain)} -> **{ex(report)}**" if plain else f"**{ex(report)}**"


def scored(model: str, data: str, out: Path, limit: int, extra: list[str], repair: bool) -> tuple[dict, dict | None]:
    """One `sqlft eval` row; with repair, the row scored with --repair and the same answers scored without."""
    if not repair:
        return sqlft_eval(model, data, out, limit, extra), None
    repaired = sqlft_eval(model, data, out, limit, [*extra, "--repair"])
    plain_out = out.with_name(out.name + "-plain")
    copy_predictions(out, plain_out)
    return repaired, sqlft_eval(model, data, plain_out, limit, extra)


def voting_cell(report: dict) -> str:
    v = report["voting"]
    return (f"changed {v['changed']} ({v['changed_and_correct']} to right), {v['candidates_ran_mean']} of "
            f"{v['candidates']} ran, none on {v['none_ran']}, {v.get('empty_left_out', 0)} without rows left out")


def suite_rows(name: str, model: str, data: str, args, extra: list[str]) -> list[str]:
    out = Path(args.out) / name
    greedy, greedy_plain = scored(model, data, out / "greedy", args.limit, extra, args.repair)
    rows = [f"| greedy | {n(greedy)} | {cell(greedy, greedy_plain)} | {generation_s(greedy):.0f} | - |"]
    if not args.vote_limit:
        return rows
    vote8, vote8_plain = scored(model, data, out / "vote8", args.vote_limit, [*extra, "--candidates", "8", "--vote"],
                                args.repair)
    covered = n(greedy) == n(vote8)  # the set has no more questions than the voting rows score
    same = greedy if covered else greedy_subset(out / "greedy", out / "vote8")
    derive_vote4(out / "vote8", out / "vote4")
    vote4, vote4_plain = scored(model, data, out / "vote4", args.vote_limit, [*extra, "--candidates", "4", "--vote"],
                                args.repair)
    sampling = generation_s(vote8) - generation_s(same)
    rows += [] if covered else [
        f"| greedy, same questions | {n(same)} | {cell(same)} | {generation_s(same):.0f} | - |"]
    rows += [f"| vote N = 4 | {n(vote4)} | {cell(vote4, vote4_plain)} | ~{generation_s(same) + 3 / 7 * sampling:.0f} "
             f"(derived) | {voting_cell(vote4)} |",
             f"| vote N = 8 | {n(vote8)} | {cell(vote8, vote8_plain)} | {generation_s(vote8):.0f} | "
             f"{voting_cell(vote8)} |"]
    return rows


def training(model: str) -> str:
    m = RunFolder(Path(model)).read_metrics()
    return f"{m['train_runtime_s'] / 60:.1f} min, {m.get('tokens_per_s', '-')} tokens/s" if m else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", action="append", required=True, help="LABEL=RUN_FOLDER, one per model")
    parser.add_argument("--spider", help="held-out Spider records (RUN/validation.jsonl of the SFT run)")
    parser.add_argument("--demo", default="demo:eval", help="real-database eval set ('' to skip)")
    parser.add_argument("--limit", type=int, default=200, help="greedy rows: first N questions (0: all)")
    parser.add_argument("--vote-limit", type=int, default=100, help="voting rows: first N questions (0: no voting)")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per generation batch (the recipes' 64)")
    parser.add_argument("--repair", action="store_true", help="score with schema repair, and the same answers "
                        "without it (each EX cell: plain -> repaired)")
    parser.add_argument("--out", default="runs/grpo-voting")
    args = parser.parse_args()
    machine = print_machine("auto")
    suites = [(s, d) for s, d in (("spider", args.spider), ("demo", args.demo)) if d]
    lines = [f"machine: {machine}"]
    for label, model in (r.split("=", 1) for r in args.row):
        for suite, data in suites:
            lines += [f"\n**{label}** (`{model}`, training {training(model)}) on {suite} ({data})\n",
                      "| decoding | questions | EX | generation s | voting |", "|---|---|---|---|---|",
                      *suite_rows(f"{Path(model).name}/{suite}", model, data, args,
                                  ["--batch-size", str(args.batch_size)])]
            print("\n".join(lines[-4:]), flush=True)
    text = "\n".join(lines)
    print(text)
    (Path(args.out) / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
