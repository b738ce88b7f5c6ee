"""A small framework for named checks, shared by `verify_deploy` and `smoke`.

In django-health-check's newer style: a check is a small object with a stable
`name`, a one-line `description` and one `run()`. `run()` returns a detail
string (pass) or an `Outcome`, or raises `CheckWarning` / `CheckFailure` with a
one-line detail and, optionally, specifics that `-v 2` lists.

`run_checks()` runs an explicit, ordered list: it times each check, turns an
unexpected exception into a failure that names the check, and never stops at
the first failure. The order of the list is the order of the report, so
`--list` and `--check NAME` need nothing more than `select_checks()`.
"""
from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def label(self) -> str:
        """The checklist's word: ok, warn or FAIL."""
        return {"pass": "ok", "warn": "warn", "fail": "FAIL"}[self.value]


@dataclass(frozen=True)
class Outcome:
    """What a check found: its status, one line for people and the specifics behind it."""

    status: Status
    detail: str
    specifics: tuple[str, ...] = ()


class CheckProblem(Exception):
    """Raised from `run()`: the check found something wrong."""

    status: Status

    def __init__(self, detail: str, specifics: Iterable[str] = ()):
        super().__init__(detail)
        self.detail = detail
        self.specifics = tuple(specifics)

    def outcome(self) -> Outcome:
        return Outcome(self.status, self.detail, self.specifics)


class CheckWarning(CheckProblem):
    """Worth a look, but the deployment works: a warning never fails the run."""

    status = Status.WARN


class CheckFailure(CheckProblem):
    """The deployment is not right: the command exits 1."""

    status = Status.FAIL


def passed(detail: str, specifics: Iterable[str] = ()) -> Outcome:
    return Outcome(Status.PASS, detail, tuple(specifics))


def warning(detail: str, specifics: Iterable[str] = ()) -> Outcome:
    return Outcome(Status.WARN, detail, tuple(specifics))


def failure(detail: str, specifics: Iterable[str] = ()) -> Outcome:
    return Outcome(Status.FAIL, detail, tuple(specifics))


class Check:
    """One named check. Subclasses set `name` and `description` and implement `run()`."""

    name: str = ""
    description: str = ""

    def run(self) -> Outcome | str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    specifics: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "specifics": list(self.specifics),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CheckReport:
    """Every check's result, in the order they ran."""

    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if result.status is Status.FAIL]

    @property
    def warned(self) -> list[CheckResult]:
        return [result for result in self.results if result.status is Status.WARN]

    def counts(self) -> dict[Status, int]:
        return {status: sum(result.status is status for result in self.results) for status in Status}

    def result(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)


class UnknownCheck(ValueError):
    """`--check NAME` named no check; the message lists the names there are."""


def select_checks(checks: Sequence[Check], names: Iterable[str] | None) -> list[Check]:
    """The checks named (in the list's own order), or all of them when `names` is empty."""
    names = list(names or [])
    if not names:
        return list(checks)
    known = [check.name for check in checks]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownCheck(f"unknown check {unknown[0]!r}; the checks are: {', '.join(known)}")
    return [check for check in checks if check.name in names]


def run_check(check: Check) -> CheckResult:
    """Run one check and time it; any exception becomes a failure naming the check."""
    started = time.perf_counter()
    try:
        returned = check.run()
        outcome = returned if isinstance(returned, Outcome) else passed(str(returned or "ok"))
    except CheckProblem as problem:
        outcome = problem.outcome()
    except Exception as error:  # noqa: BLE001 - a check that crashes is a failed check, not a crashed command
        first_line = (str(error).strip().splitlines() or [""])[0]
        outcome = failure(f"check {check.name!r} raised {type(error).__name__}: {first_line}".rstrip(": "))
    return CheckResult(check.name, outcome.status, outcome.detail, outcome.specifics, time.perf_counter() - started)


def run_checks(checks: Sequence[Check]) -> CheckReport:
    """Run every check in order (never stopping at a failure) and collect the results."""
    started = time.perf_counter()
    results = [run_check(check) for check in checks]
    return CheckReport(results=results, seconds=time.perf_counter() - started)
