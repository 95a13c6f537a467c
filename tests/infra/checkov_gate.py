"""Decides the checkov step of `make test-infra` from checkov's JSON report.

checkov's exit code is not enough: it exits 0 when a file fails to parse (the file is then
simply not scanned), so this reads the report and fails on any failed check, any parsing
error, a framework that scanned nothing, or a skip without a reason.

    python tests/infra/checkov_gate.py terraform=REPORT.json dockerfile=REPORT2.json

Each argument names the framework a report must contain results for.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

NO_REASON = {"", "no comment provided"}


def gate(report: object, frameworks: list[str]) -> list[str]:
    runs = report if isinstance(report, list) else [report]
    by_type = {run.get("check_type"): run for run in runs if isinstance(run, dict)}
    problems: list[str] = []
    for framework in frameworks:
        run = by_type.get(framework)
        if run is None:
            problems.append(f"{framework}: no results in the report (nothing scanned?)")
            continue
        summary = run.get("summary", {})
        results = run.get("results", {})
        for check in results.get("failed_checks", []):
            problems.append(
                f"{framework}: FAILED {check['check_id']} {check.get('check_name', '')} -- "
                f"{check.get('resource')} ({check.get('file_path')}:{check.get('file_line_range')})"
            )
        for path in results.get("parsing_errors", []):
            problems.append(f"{framework}: PARSING ERROR in {path} (checkov skipped the file)")
        if summary.get("parsing_errors"):
            problems.append(f"{framework}: {summary['parsing_errors']} parsing error(s)")
        if not summary.get("passed") and not summary.get("failed"):
            problems.append(f"{framework}: no check ran")
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "") or ""
            if reason.strip().lower() in NO_REASON:
                problems.append(f"{framework}: skip of {check['check_id']} on {check.get('resource')} has no reason")
    return problems


def describe(report: object) -> str:
    runs = report if isinstance(report, list) else [report]
    lines = []
    for run in runs:
        s = run.get("summary", {})
        lines.append(
            f"checkov {run.get('check_type')}: {s.get('passed', 0)} passed, {s.get('failed', 0)} failed, "
            f"{s.get('skipped', 0)} skipped (justified in place), {s.get('parsing_errors', 0)} parsing errors, "
            f"{s.get('resource_count', 0)} resources"
        )
        for check in run.get("results", {}).get("skipped_checks", []):
            lines.append(f"  skip {check['check_id']} {check.get('resource')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all("=" in arg for arg in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    problems: list[str] = []
    for arg in argv[1:]:
        framework, path = arg.split("=", 1)
        text = Path(path).read_text() if Path(path).exists() else ""
        try:
            report = json.loads(text)
        except json.JSONDecodeError:
            problems.append(f"{framework}: checkov produced no JSON report ({path}): {text[:500]!r}")
            continue
        print(describe(report))
        problems += gate(report, [framework])
    if problems:
        sys.stdout.flush()
        print("\n".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
