"""Eval reports: accuracy and breakdowns from results.jsonl rows, written as report.json, report.md, report.png;
and `compare_runs`, two eval folders side by side (`sqlft eval compare RUN_A RUN_B`).

Execution accuracy counts `match` over every example except gold_error (a gold query that does not run is a
harness problem, not a model error: it is excluded and listed).
"""

import importlib.metadata
import json
import platform
import sys
from collections import Counter
from pathlib import Path

from sqlft.sql.hardness import LEVELS

STATUSES = ("match", "mismatch", "pred_parse_error", "pred_exec_error", "pred_timeout", "rejected", "gold_error")


def summarize(rows: list[dict], settings: dict, generation: dict | None = None) -> dict:
    """Every number of the report, as a JSON-ready dict."""
    counts = Counter(row["status"] for row in rows)
    scored = [row for row in rows if row["status"] != "gold_error"]
    disagree = [row for row in scored if row.get("difficulty") and row["difficulty"].lower() != row["hardness"]]
    summary = {
        "mode": settings.get("mode"),
        # Which engine ran the SQL: sqlite (SQLite-dialect data on SQLite files, as written) or duckdb.
        "engines": dict(Counter(row.get("engine") or "none" for row in rows)),
        "examples": len(rows),
        "scored": len(scored),
        "execution_accuracy": _rate(sum(row["status"] == "match" for row in scored), len(scored)),
        "exact_match": _rate(sum(bool(row["exact_match"]) for row in scored), len(scored)),
        "valid_sql": _rate(sum(bool(row["valid_sql"]) for row in scored), len(scored)),
        # Per status, plus "total" (every example, gold errors included).
        "counts": {**{status: counts.get(status, 0) for status in STATUSES}, "total": len(rows)},
        "by_hardness": breakdown(scored, lambda row: row["hardness"] or "unparsed", order=LEVELS),
        # The record's own difficulty label where it has one, else the computed Spider hardness.
        "by_difficulty": breakdown(scored, lambda row: (row.get("difficulty") or row["hardness"] or "unparsed").lower(),
                                   order=LEVELS),
        "difficulty_differs_from_hardness": len(disagree),
        "by_category": breakdown(scored, lambda row: row.get("category") or "", skip_empty=True),
        "by_database": breakdown(scored, lambda row: row.get("db_id") or ""),
        "ran_on": ran_on(rows),
        "non_discriminating_gold": [row["id"] for row in scored if row.get("discriminating") is False],
        "gold_errors": [{"id": row["id"], "db_id": row["db_id"], "reason": row["reason"]}
                        for row in rows if row["status"] == "gold_error"],
        "generation": generation or None,
        "voting": voting(rows),
        "repair": repair(rows),
        "settings": settings,
        "versions": versions(settings),
    }
    return summary


def ran_on(rows: list[dict]) -> dict[str, dict]:
    """database -> {engine, n, correct}: where the examples ran, every example counted (gold errors too). The
    database is the file or URL, "synthesized" for schema-only records, "" where none could be found."""
    found: dict[str, dict] = {}
    for row in rows:
        database = row.get("database", "synthesized" if row.get("synthetic") else "")
        group = found.setdefault(database, {"engine": row.get("engine") or "", "n": 0, "correct": 0})
        group["n"] += 1
        group["correct"] += row["status"] == "match"
        group["engine"] = group["engine"] or row.get("engine") or ""
    return dict(sorted(found.items(), key=lambda item: (-item[1]["n"], item[0])))


def ran_on_text(groups: dict[str, dict]) -> str:
    """The summary line's words for ran_on: a few databases by name, many by count; synthesized ones always
    said so (a user's own records must never be scored on made-up data silently)."""
    real = {db: g for db, g in groups.items() if db and db != "synthesized"}
    parts = []
    if len(real) <= 3:
        parts += [f"{_short_name(db)} ({g['engine'] or 'not usable'}, {g['n']})" for db, g in real.items()]
    else:
        engines = Counter()
        for g in real.values():
            engines[g["engine"] or "not usable"] += g["n"]
        parts += [f"{sum(1 for g in real.values() if (g['engine'] or 'not usable') == e)} {e} databases ({n})"
                  for e, n in engines.items()]
    if "synthesized" in groups:
        g = groups["synthesized"]
        parts.append(f"synthesized from the records' schemas ({g['engine'] or 'duckdb'}, {g['n']})")
    if "" in groups:
        parts.append(f"no database found ({groups['']['n']})")
    return "; ".join(parts)


def _short_name(database: str) -> str:
    return database if "://" in database or "/" not in database else Path(database).name


def voting(rows: list[dict]) -> dict | None:
    """How voting over executed results went (sqlft.sql.vote): how often it changed the greedy answer, how many
    candidates ran, and what the changes did to accuracy. None when the eval did not vote."""
    voted = [row for row in rows if row.get("vote")]
    if not voted:
        return None
    changed = [row for row in voted if row["vote"]["changed"]]
    n = len(voted)
    return {"questions": n, "candidates": voted[0]["vote"]["candidates"],
            "changed": len(changed), "changed_rate": _rate(len(changed), n),
            "changed_and_correct": sum(row["status"] == "match" for row in changed),
            "candidates_ran_mean": round(sum(row["vote"]["ran"] for row in voted) / n, 2),
            "none_ran": sum(row["vote"]["ran"] == 0 for row in voted),
            "empty_left_out": sum(row["vote"].get("empty", 0) for row in voted)}


def repair(rows: list[dict]) -> dict | None:
    """How schema repair went (sqlft.sql.repair): answers that did not run and were rewritten, and how many of those
    then match. None when no answer was repaired."""
    repaired = [row for row in rows if "repaired_from" in row]
    if not repaired:
        return None
    return {"repaired": len(repaired), "repaired_and_correct": sum(row["status"] == "match" for row in repaired),
            "still_failing": sum(row["status"] in ("pred_exec_error", "rejected", "pred_timeout") for row in repaired)}


def _rate(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def breakdown(rows: list[dict], key, order: tuple[str, ...] = (), skip_empty: bool = False) -> dict[str, dict]:
    """group -> {n, correct, accuracy}; groups in `order` first, then by name."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        name = key(row)
        if name or not skip_empty:
            groups.setdefault(name, []).append(row)
    names = [n for n in order if n in groups] + sorted(n for n in groups if n not in order)
    return {name: {"n": len(groups[name]), "correct": sum(r["status"] == "match" for r in groups[name]),
                   "accuracy": _rate(sum(r["status"] == "match" for r in groups[name]), len(groups[name]))}
            for name in names}


def versions(settings: dict) -> dict:
    found = {"model": settings.get("model"), "data": settings.get("data"), "data_sha256": settings.get("data_sha256"),
             "python": platform.python_version()}
    for package in ("sqlft", "duckdb", "sqlglot"):
        found[package] = _version(package)
    if settings.get("model"):  # generation ran: the model stack matters too
        for package in ("torch", "transformers", "peft"):
            found[package] = _version(package)
    return found


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------ writing


def write_report(out: Path, rows: list[dict], settings: dict, generation: dict | None = None) -> dict:
    """report.json, report.md and report.png in `out`; returns the summary."""
    summary = summarize(rows, settings, generation)
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "report.md").write_text(markdown(summary, rows))
    plot(summary, out / "report.png")
    return summary


def summary_line(summary: dict, out: Path) -> str:
    acc, n = summary["execution_accuracy"], summary["scored"]
    correct = summary["counts"]["match"]
    excluded = summary["counts"]["gold_error"]
    note = f", {excluded} gold errors excluded" if excluded else ""
    vote = summary.get("voting")
    if vote:
        note += (f"; voting changed {vote['changed']}/{vote['questions']} answers, "
                 f"{vote['candidates_ran_mean']}/{vote['candidates']} ran on average")
    fixed = summary.get("repair")
    if fixed:
        note += f"; {fixed['repaired']} answers repaired, {fixed['repaired_and_correct']} of them correct"
    where = ran_on_text(summary.get("ran_on") or {})
    return (f"execution accuracy {acc:.1%} ({correct}/{n}{note}) | exact match {summary['exact_match']:.1%} | "
            f"valid SQL {summary['valid_sql']:.1%} | mode {summary['mode']} | ran on {where} | "
            f"{out / 'report.md'}")


def markdown(summary: dict, rows: list[dict]) -> str:
    s = summary["settings"]
    lines = [
        "# sqlft eval report", "",
        f"- model: `{s.get('model') or '(predictions file)'}`",
        f"- data: `{s.get('data')}` ({s.get('data_kind')}, sha256 `{(s.get('data_sha256') or '')[:16]}`)",
        f"- comparison mode: **{summary['mode']}**, float tolerance {s.get('float_tolerance')}, "
        f"gold dialect {s.get('dialect')}, engines {summary.get('engines')}",
        "",
        "| metric | value |", "|---|---|",
        f"| execution accuracy | **{summary['execution_accuracy']:.1%}** "
        f"({summary['counts']['match']}/{summary['scored']}) |",
        f"| exact match (normalised SQL) | {summary['exact_match']:.1%} |",
        f"| valid SQL | {summary['valid_sql']:.1%} |",
        f"| examples (scored / total) | {summary['scored']} / {summary['examples']} |",
        "", "## Statuses", "", "| status | count |", "|---|---|",
        *[f"| {status} | {summary['counts'][status]} |" for status in STATUSES],
    ]
    lines += _table("Accuracy by Spider hardness", summary["by_hardness"])
    if summary["difficulty_differs_from_hardness"]:
        lines += _table(f"Accuracy by the records' own difficulty ({summary['difficulty_differs_from_hardness']} "
                        "differ from the computed hardness)", summary["by_difficulty"])
    if summary["by_category"]:
        lines += _table("Accuracy by category", summary["by_category"])
    lines += _table("Accuracy by database", summary["by_database"])
    lines += ["", "## Where each example ran", "", "| database | engine | n | correct |", "|---|---|---|---|",
              *[f"| {db or '(none found)'} | {g['engine'] or '-'} | {g['n']} | {g['correct']} |"
                for db, g in (summary.get("ran_on") or {}).items()]]
    gen = summary.get("generation")
    if gen:
        lines += ["", "## Generation", "",
                  f"- {gen['examples']} answers, {gen['total_s']} s in all, {gen['per_example_s']} s per example, "
                  f"{gen['tokens_per_s']} new tokens/s ({gen['new_tokens']} new, {gen['prompt_tokens']} prompt tokens)",
                  f"- decoding: `{json.dumps(s.get('decoding'))}`"]
        vote = summary.get("voting")
        if vote:
            lines.append(f"- voting over executed results ({vote['candidates']} answers per question): the answer "
                         f"changed on {vote['changed']} of {vote['questions']} questions ({vote['changed_rate']:.1%};"
                         f" {vote['changed_and_correct']} of those are correct); {vote['candidates_ran_mean']} "
                         f"answers ran per question on average, none on {vote['none_ran']}; "
                         f"{vote.get('empty_left_out', 0)} answers without rows left out of the vote")
    fixed = summary.get("repair")
    if fixed:
        lines += ["", f"Schema repair: {fixed['repaired']} answers did not run and were rewritten to the schema's "
                  f"names (sqlft.sql.repair); {fixed['repaired_and_correct']} of them match, {fixed['still_failing']} "
                  "still fail. Each row's `repaired_from` in results.jsonl is the answer as written."]
    if summary["non_discriminating_gold"]:
        lines += ["", f"{len(summary['non_discriminating_gold'])} gold queries give the same result on every "
                  "synthesized instance and on an empty database (non-discriminating): any prediction with that "
                  "result passes. Ids: " + ", ".join(summary["non_discriminating_gold"][:30])]
    if summary["gold_errors"]:
        lines += ["", "## Gold errors (harness problems, excluded from accuracy)", ""]
        lines += [f"- `{e['id']}` ({e['db_id']}): {e['reason'][:300]}" for e in summary["gold_errors"][:30]]
    failures = [row for row in rows if row["status"] not in ("match", "gold_error")][:20]
    if failures:
        lines += ["", "## First failures", ""]
        lines += [f"- `{r['id']}` {r['status']}: {(r['reason'] or '')[:200]}  \n  gold `{r['gold_sql'][:150]}`  \n"
                  f"  pred `{(r['pred_sql'] or '')[:150]}`" for r in failures]
    lines += ["", "## Versions", "", *[f"- {k}: {v}" for k, v in summary["versions"].items()], ""]
    return "\n".join(lines)


def _table(title: str, groups: dict[str, dict]) -> list[str]:
    return ["", f"## {title}", "", "| group | n | correct | accuracy |", "|---|---|---|---|",
            *[f"| {name or '(none)'} | {g['n']} | {g['correct']} | {g['accuracy']:.1%} |"
              for name, g in groups.items()]]


def plot(summary: dict, path: Path) -> None:
    """Two bar charts: accuracy by hardness, and how many examples got each status."""
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    levels = summary["by_hardness"]
    left.bar(list(levels), [g["accuracy"] for g in levels.values()], color="tab:blue")
    for i, g in enumerate(levels.values()):
        left.text(i, g["accuracy"], f"{g['correct']}/{g['n']}", ha="center", va="bottom", fontsize=8)
    left.set_ylim(0, 1.1)
    left.set_title(f"execution accuracy by hardness ({summary['mode']} mode)")
    right.bar(list(STATUSES), [summary["counts"][status] for status in STATUSES], color="tab:gray")
    right.set_title("examples per status")
    right.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ comparing two runs


def read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    report_path, results_path = run_dir / "report.json", run_dir / "results.jsonl"
    for path in (report_path, results_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run_dir} the --out folder of a finished sqlft eval?")
    rows = [json.loads(line) for line in results_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return json.loads(report_path.read_text()), rows


def compare_runs(run_a: Path, run_b: Path) -> str:
    """Accuracy, exact match, valid SQL and status counts side by side, then the examples that flipped."""
    (a, rows_a), (b, rows_b) = read_run(run_a), read_run(run_b)
    width = max(len(str(run_a)), len(str(run_b)), 12)
    lines = [f"{'':22}{'A':>{width}}  {'B':>{width}}", f"{'':22}{str(run_a):>{width}}  {str(run_b):>{width}}"]
    for name in ("execution_accuracy", "exact_match", "valid_sql"):
        lines.append(f"{name:22}{a[name]:>{width}.1%}  {b[name]:>{width}.1%}")
    for name in ("mode", "scored", "examples"):
        lines.append(f"{name:22}{str(a[name]):>{width}}  {str(b[name]):>{width}}")
    for status in STATUSES:
        lines.append(f"{status:22}{a['counts'].get(status, 0):>{width}}  {b['counts'].get(status, 0):>{width}}")
    if a["mode"] != b["mode"]:
        lines.append(f"note: the runs used different comparison modes ({a['mode']} vs {b['mode']})")

    by_id_b = {row["id"]: row for row in rows_b}
    common = [(row, by_id_b[row["id"]]) for row in rows_a if row["id"] in by_id_b]
    if len(common) != len(rows_a) or len(common) != len(rows_b):
        lines.append(f"note: {len(common)} examples in both runs ({len(rows_a)} in A, {len(rows_b)} in B)")
    fixed = [(x, y) for x, y in common if x["status"] != "match" and y["status"] == "match"]
    broken = [(x, y) for x, y in common if x["status"] == "match" and y["status"] != "match"]
    for title, pairs in ((f"wrong in A, right in B: {len(fixed)}", fixed),
                         (f"right in A, wrong in B: {len(broken)}", broken)):
        lines += ["", title]
        for x, y in pairs:
            question = " ".join((x.get("question") or "").split())
            question = question if len(question) <= 70 else question[:67] + "..."
            lines.append(f"  {x['id']} [{x.get('db_id', '')}] {x['status']} -> {y['status']}: {question}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(compare_runs(Path(sys.argv[1]), Path(sys.argv[2])))
