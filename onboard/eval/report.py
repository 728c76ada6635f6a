"""A table of several `onboard eval` runs: ``python -m onboard.eval.report DIR`` reads every ``DIR/*/report.json`` and
prints (and writes to ``DIR/summary.md``) one Markdown row per run: what was asked, the runner and latency, success
with its 95 % Wilson interval, median time to success, faults and starved control periods."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HEADER = (
    "| run | task | instruction(s) | runner | latency | n | success | 95% CI | median time to success | faults "
    "| warm-up holds | starved periods |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _instructions(report: dict[str, Any]) -> str:
    per = report["summary"].get("per_instruction", {})
    names = sorted(per)
    if len(names) <= 2:
        return "; ".join(f'"{n}"' for n in names)
    return f"{len(names)} phrasings ({report['config'].get('split', 'train')})"


def row(name: str, report: dict[str, Any]) -> str:
    cfg, s = report["config"], report["summary"]
    lo, hi = s["ci95"]
    t = s.get("time_to_success", {}).get("median")
    totals = report.get("runner_stats", {})
    latency = cfg.get("latency", "")
    return (
        f"| {name} | {cfg['task']} | {_instructions(report)} | {cfg['runner']} | {latency} | {s['n']} "
        f"| {100 * s['success_rate']:.0f}% ({s['successes']}/{s['n']}) | {100 * lo:.0f}-{100 * hi:.0f}% "
        f"| {'' if t is None else f'{t:.2f} s'} | {s.get('faults', 0)} "
        f"| {totals.get('warmup_ticks', '')} | {totals.get('starved_ticks', '')} |"
    )


def table(folder: str | Path) -> str:
    folder = Path(folder)
    reports = sorted(folder.glob("*/report.json"))
    if not reports:
        raise FileNotFoundError(f"no */report.json under {folder}: run `onboard eval --output_dir {folder}/<name>`")
    lines = [HEADER]
    for path in reports:
        lines.append(row(path.parent.name, json.loads(path.read_text())))
    commands = [json.loads(p.read_text()).get("command", "") for p in reports]
    lines += ["", "Commands:", "", "```", *commands, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(
            "usage: python -m onboard.eval.report DIR   (DIR holds one folder per `onboard eval` run)", file=sys.stderr
        )
        return 2
    try:
        text = table(argv[0])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (Path(argv[0]) / "summary.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
