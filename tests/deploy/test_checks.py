"""The check framework (deploy/checks.py) and how reports are printed (deploy/reporting.py)."""
import time

import pytest

from deploy.checks import (
    Check,
    CheckFailure,
    CheckReport,
    CheckResult,
    CheckWarning,
    Status,
    UnknownCheck,
    run_checks,
    select_checks,
    warning,
)
from deploy.reporting import (
    append_step_summary,
    checklist_lines,
    report_document,
    step_summary_markdown,
    summary_line,
)


class Passing(Check):
    name = "passing"
    description = "Always fine."

    def run(self):
        return "all good"


class Warns(Check):
    name = "warning"

    def run(self):
        raise CheckWarning("look at this", ["first thing", "second thing"])


class ReturnsWarning(Check):
    name = "returns-warning"

    def run(self):
        return warning("returned, not raised")


class Failing(Check):
    name = "failing"

    def run(self):
        raise CheckFailure("broken | badly", ["the specific"])


class Crashing(Check):
    name = "crashing"

    def run(self):
        raise KeyError("tool-key")


class Slow(Check):
    name = "slow"

    def run(self):
        time.sleep(0.02)
        return "slept"


def test_run_checks__a_returned_string_is_a_pass_with_that_detail():
    report = run_checks([Passing()])

    assert report.results[0].status is Status.PASS
    assert report.results[0].detail == "all good"
    assert report.ok


def test_run_checks__a_raised_warning_keeps_its_detail_and_specifics_and_is_still_ok():
    report = run_checks([Warns()])

    assert report.results[0] == CheckResult(
        "warning", Status.WARN, "look at this", ("first thing", "second thing"), report.results[0].seconds
    )
    assert report.ok


def test_run_checks__a_returned_warning_outcome_is_a_warning():
    assert run_checks([ReturnsWarning()]).results[0].status is Status.WARN


def test_run_checks__a_raised_failure_fails_the_report():
    report = run_checks([Failing()])

    assert report.results[0].status is Status.FAIL
    assert not report.ok
    assert [result.name for result in report.failed] == ["failing"]


def test_run_checks__an_unexpected_exception_is_a_failure_naming_the_check():
    report = run_checks([Crashing()])

    assert report.results[0].status is Status.FAIL
    assert report.results[0].detail == "check 'crashing' raised KeyError: 'tool-key'"


def test_run_checks__never_stops_at_the_first_failure():
    report = run_checks([Failing(), Crashing(), Passing()])

    assert [(result.name, result.status) for result in report.results] == [
        ("failing", Status.FAIL),
        ("crashing", Status.FAIL),
        ("passing", Status.PASS),
    ]


def test_run_checks__times_each_check_and_the_whole_run():
    report = run_checks([Slow(), Passing()])

    assert report.result("slow").seconds >= 0.02
    assert report.result("passing").seconds < 0.02
    assert report.seconds >= 0.02


def test_select_checks__keeps_the_lists_order_whatever_order_the_names_come_in():
    checks = [Passing(), Warns(), Failing()]

    assert [check.name for check in select_checks(checks, ["failing", "passing"])] == ["passing", "failing"]


def test_select_checks__no_names_means_every_check():
    checks = [Passing(), Warns()]

    assert select_checks(checks, None) == checks


def test_select_checks__an_unknown_name_is_refused_with_the_names_there_are():
    with pytest.raises(UnknownCheck, match="unknown check 'pasing'; the checks are: passing, warning"):
        select_checks([Passing(), Warns()], ["pasing"])


def sample_report() -> CheckReport:
    return CheckReport(
        results=[
            CheckResult("database", Status.PASS, "postgresql omnitool", seconds=0.01),
            CheckResult("access-file", Status.WARN, "1 grant not in the file", ("extra: bob → team-directory",)),
            CheckResult("superuser", Status.FAIL, "no active superuser | none"),
        ],
        seconds=1.234,
    )


def test_checklist_lines__one_dotted_line_per_check_with_ok_warn_or_fail():
    assert checklist_lines(sample_report()) == [
        "database ....................... ok    postgresql omnitool",
        "access-file .................... warn  1 grant not in the file",
        "superuser ...................... FAIL  no active superuser | none",
    ]


def test_checklist_lines__verbosity_2_lists_the_specifics_under_their_check():
    lines = checklist_lines(sample_report(), verbosity=2)

    assert lines[1:3] == [
        "access-file .................... warn  1 grant not in the file",
        "    extra: bob → team-directory",
    ]


def test_summary_line__counts_each_status_and_gives_the_time():
    assert summary_line(sample_report()) == "3 checks: 1 ok, 1 warn, 1 failed in 1.23 s"


def test_report_document__carries_ok_the_context_and_every_check():
    document = report_document(sample_report(), environment="staging")

    assert document["ok"] is False
    assert document["environment"] == "staging"
    assert [(check["name"], check["status"]) for check in document["checks"]] == [
        ("database", "pass"),
        ("access-file", "warn"),
        ("superuser", "fail"),
    ]
    assert document["checks"][1]["specifics"] == ["extra: bob → team-directory"]


def test_step_summary__is_a_markdown_table_with_pipes_escaped():
    markdown = step_summary_markdown("verify_deploy (staging)", sample_report())

    assert markdown.splitlines()[:6] == [
        "### verify_deploy (staging): FAILED",
        "",
        "| Check | Status | Detail |",
        "|---|---|---|",
        "| `database` | ✅ ok | postgresql omnitool |",
        "| `access-file` | ⚠️ warn | 1 grant not in the file |",
    ]
    assert "| `superuser` | ❌ FAIL | no active superuser \\| none |" in markdown


def test_append_step_summary__appends_to_GITHUB_STEP_SUMMARY(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    append_step_summary("smoke", sample_report())

    assert summary.read_text().startswith("earlier step\n### smoke: FAILED\n")


def test_append_step_summary__does_nothing_without_GITHUB_STEP_SUMMARY(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    assert append_step_summary("smoke", sample_report()) is None
