"""How check reports reach people and CI: the text checklist, the JSON
document, the Markdown table in GitHub's step summary, and `CheckCommand`, the
base of `verify_deploy` and `smoke` (`--list`, `--check NAME`, exit 1 on failure).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from django.core.management.base import CommandError

from deploy.checks import Check, CheckReport, Status, UnknownCheck, select_checks
from deploy.command import DeployCommand

CHECKLIST_WIDTH = 32  # name and dots; details start in one column
STATUS_SYMBOLS = {Status.PASS: "✅ ok", Status.WARN: "⚠️ warn", Status.FAIL: "❌ FAIL"}


def checklist_lines(report: CheckReport, verbosity: int = 1) -> list[str]:
    """`name ........ ok  detail`, one line a check; specifics indented below at verbosity 2+."""
    lines = []
    for result in report.results:
        dots = "." * max(3, CHECKLIST_WIDTH - len(result.name) - 1)
        line = f"{result.name} {dots} {result.status.label:<4}  {result.detail}".rstrip()
        if verbosity >= 3:
            line += f"  ({result.seconds:.3f} s)"
        lines.append(line)
        if verbosity >= 2:
            lines += [f"    {specific}" for specific in result.specifics]
    return lines


def summary_line(report: CheckReport) -> str:
    counts = report.counts()
    checks = f"{len(report.results)} check{'' if len(report.results) == 1 else 's'}"
    return (
        f"{checks}: {counts[Status.PASS]} ok, {counts[Status.WARN]} warn, "
        f"{counts[Status.FAIL]} failed in {report.seconds:.2f} s"
    )


def report_document(report: CheckReport, **context) -> dict:
    """The `--format json` document: {"ok", **context, "checks": [...], "seconds"}."""
    return {
        "ok": report.ok,
        **context,
        "checks": [result.as_dict() for result in report.results],
        "seconds": round(report.seconds, 3),
    }


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def step_summary_markdown(title: str, report: CheckReport) -> str:
    """A heading, the checks as a Markdown table, and the summary line."""
    lines = [
        f"### {title}: {'passed' if report.ok else 'FAILED'}",
        "",
        "| Check | Status | Detail |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{result.name}` | {STATUS_SYMBOLS[result.status]} | {_markdown_cell(result.detail)} |"
        for result in report.results
    ]
    lines += ["", summary_line(report), ""]
    return "\n".join(lines) + "\n"


def append_step_summary(title: str, report: CheckReport, path: str | os.PathLike | None = None) -> Path | None:
    """Append the Markdown table to `path` or $GITHUB_STEP_SUMMARY; nothing when neither is set."""
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as summary:
        summary.write(step_summary_markdown(title, report))
    return Path(path)


class CheckCommand(DeployCommand):
    """A command that runs an ordered list of checks and reports them as a checklist.

    Subclasses implement `checks(options)`, and call `report(...)` with the result
    of `run_checks`. Adds `--list` and `--check NAME` (repeatable).
    """

    # System checks are what `verify_deploy` reports as one of its checks (and say nothing
    # about a remote deployment `smoke` talks to), so they must not stop the command first.
    requires_system_checks = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--list", action="store_true", help="List the checks, in order, and run none.")
        parser.add_argument(
            "--check",
            action="append",
            metavar="NAME",
            dest="check_names",
            help="Run only this check (repeat for several). --list shows the names.",
        )
        return parser

    def selected_checks(self, checks: Sequence[Check], options: dict) -> list[Check]:
        try:
            return select_checks(checks, options.get("check_names"))
        except UnknownCheck as error:
            raise CommandError(f"{error}.") from None

    def list_checks(self, checks: Sequence[Check]) -> None:
        if self.format == "json":
            self.write_json({"checks": [{"name": check.name, "description": check.description} for check in checks]})
            return
        for check in checks:
            self.stdout.write(f"{check.name:<{CHECKLIST_WIDTH}} {check.description}")

    def report(self, report: CheckReport, title: str, **context) -> None:
        """Print the report (text or JSON), append the step summary, and exit 1 if a check failed."""
        if self.format == "json":
            self.write_json(report_document(report, **context))
        else:
            styles = {Status.PASS: self.style.SUCCESS, Status.WARN: self.style.WARNING, Status.FAIL: self.style.ERROR}
            if self.verbosity >= 1:
                index = 0
                for line in checklist_lines(report, self.verbosity):
                    # Specific lines (indented) keep the default colour; each check line takes its status colour.
                    if line.startswith("    "):
                        self.stdout.write(line)
                    else:
                        self.stdout.write(styles[report.results[index].status](line))
                        index += 1
                self.stdout.write(summary_line(report))
        append_step_summary(title, report)
        if not report.ok:
            names = ", ".join(result.name for result in report.failed)
            raise CommandError(f"{len(report.failed)} of {len(report.results)} checks failed: {names}.")
