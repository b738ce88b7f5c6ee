#!/usr/bin/env python
"""Access import/export at a million grants, against PostgreSQL's COPY.

    make bench                       # or: .venv/bin/python benchmarks/access_bench.py [--repeat 3]

Creates its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/omnitool_bench_a), migrates it, loads
10,000 users and 100 tools, and then, in each round, times:

- raw COPY of the 1,000,000 (user, tool) grants into the empty grants table,
  commit included (its deferred foreign-key checks too): the floor;
- `manage.py export_access` of those grants (the file every other step reads);
- `manage.py import_access` of that file into an empty grants table;
- the same import again (a no-op: must write no row and use no sequence value);
- `import_access --dry-run`;
- `import_access --mode mirror` of a file lacking 1% of the grants.

Every command runs as a real child process with DATABASE_URL pointing at the
bench database, so its time includes start-up, reading and validating the
file; its peak RSS comes from os.wait4's resource usage for that child. The
table shows the median of the rounds, the ratio to COPY's median, and the
largest peak RSS. The database is dropped at the end, also after a failure.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnitool_bench_a"

USER_COUNT = 10_000
TOOL_COUNT = 100
MIRROR_REMOVED_EVERY = 100  # drop every 100th grant from the mirror file: 1%

TARGETS = {  # step -> (issue minimum, project aim), as a ratio to COPY or in seconds / MB
    "import into an empty table": "≤ 3× (aim ≤ 1.3×)",
    "no-op re-import": "≤ 1.5× (aim ≤ 0.15×)",
    "export_access": "≤ 10 s (aim ≤ 0.1×)",
}


BENCH_SETTINGS = """\
from omnitool.settings import *  # noqa: F401,F403

import os

from tools import catalogue

catalogue.CATALOGUE = catalogue.CATALOGUE + tuple(
    catalogue.CatalogueTool(
        key=f"bench-tool-{number:03d}",
        name=f"Bench Tool {number:03d}",
        description="A tool of the access benchmark.",
        view="tools.pages.team_directory.team_directory",
    )
    for number in range(int(os.environ["BENCH_TOOL_COUNT"]))
)
"""


@dataclass
class Step:
    name: str
    times: list[float] = field(default_factory=list)
    peak_rss_kb: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds to run; the table shows medians (default 3)")
    parser.add_argument("--users", type=int, default=USER_COUNT)
    parser.add_argument("--tools", type=int, default=TOOL_COUNT)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    arguments = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    database = urlsplit(url).path.lstrip("/")
    if not database:
        raise SystemExit(f"BENCH_DATABASE_URL={url} names no database.")
    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))

    print(f"Bench database: {database} ({arguments.users:,} users x {arguments.tools} tools = "
          f"{arguments.users * arguments.tools:,} grants, {arguments.repeat} rounds)", flush=True)
    _run_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}"')
    _run_admin(admin_url, f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory(prefix="omnitool-bench-") as directory:
            steps = run_bench(url, Path(directory), arguments)
        print_table(steps, arguments)
    finally:
        if not arguments.keep:
            _run_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return 0


def run_bench(url: str, directory: Path, arguments) -> dict[str, Step]:
    # The bench's 100 tools are catalogue tools, declared by a settings module
    # that extends the catalogue before Django starts: migrate's catalogue sync
    # creates them and export_access lists them, as for real tools.
    (directory / "omnitool_bench_settings.py").write_text(BENCH_SETTINGS)
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "OMNITOOL_ENV": "local",
        "DJANGO_SETTINGS_MODULE": "omnitool_bench_settings",
        "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)]),
        "BENCH_TOOL_COUNT": str(arguments.tools),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command(environment, directory, "migrate", "--verbosity", "0")
    connection = psycopg2.connect(url)
    connection.autocommit = True
    user_ids, tool_ids = load_users_and_tools(connection, arguments.users)
    grants = [(user_id, tool_id) for user_id in user_ids for tool_id in tool_ids]
    copy_text = "".join(f"{user_id}\t{tool_id}\t2026-01-01 00:00:00+00\n" for user_id, tool_id in grants)
    del grants

    access_file = directory / "access.json"
    mirror_file = directory / "mirror.json"
    steps = {name: Step(name) for name in (
        "COPY (the floor)",
        "export_access",
        "import into an empty table",
        "no-op re-import",
        "import --dry-run",
        "mirror removing 1%",
    )}
    for round_number in range(1, arguments.repeat + 1):
        print(f"Round {round_number}:", flush=True)
        truncate_grants(connection)
        steps["COPY (the floor)"].times.append(copy_grants(connection, copy_text))
        report(steps["COPY (the floor)"])

        timed(steps["export_access"], environment, directory, "export_access", "--output", str(access_file))
        if round_number == 1:
            size = access_file.stat().st_size
            steps["export_access"].notes.append(f"file {size / 1e6:.0f} MB")
            write_mirror_file(access_file, mirror_file)

        truncate_grants(connection)
        timed(steps["import into an empty table"], environment, directory, "import_access", str(access_file), "--noinput")
        assert grant_count(connection) == len(copy_text.splitlines()), "the import did not load every grant"

        before = table_state(connection)
        timed(steps["no-op re-import"], environment, directory, "import_access", str(access_file), "--noinput")
        after = table_state(connection)
        if before != after:
            raise SystemExit(f"the no-op re-import changed the database: {before} -> {after}")
        if round_number == 1:
            steps["no-op re-import"].notes.append("0 rows written, sequence and snapshots unchanged")

        timed(steps["import --dry-run"], environment, directory, "import_access", str(access_file), "--dry-run")

        timed(
            steps["mirror removing 1%"], environment, directory,
            "import_access", str(mirror_file), "--mode", "mirror", "--noinput",
        )
        expected = len(copy_text.splitlines()) - len(copy_text.splitlines()) // MIRROR_REMOVED_EVERY
        assert grant_count(connection) == expected, "the mirror import left the wrong number of grants"
    connection.close()
    return steps


def load_users_and_tools(connection, user_count: int) -> tuple[list[int], list[int]]:
    with connection.cursor() as cursor:
        users = io.StringIO(
            "".join(
                f"!\tf\tuser{n:05d}\t\t\tuser{n:05d}@example.com\tf\tt\t2026-01-01 00:00:00+00\n"
                for n in range(user_count)
            )
        )
        cursor.copy_expert(
            "COPY accounts_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined) FROM STDIN",
            users,
        )
        cursor.execute("SELECT id FROM accounts_user ORDER BY id")
        user_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT id FROM tools_tool WHERE key LIKE 'bench-tool-%%' ORDER BY id")
        tool_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute("VACUUM ANALYZE")
    return user_ids, tool_ids


def copy_grants(connection, copy_text: str) -> float:
    started = time.perf_counter()
    connection.autocommit = False
    with connection.cursor() as cursor:
        cursor.copy_expert(
            "COPY tools_toolaccess (user_id, tool_id, granted_at) FROM STDIN", io.StringIO(copy_text)
        )
    connection.commit()  # the deferred foreign-key checks run here
    connection.autocommit = True
    return time.perf_counter() - started


def truncate_grants(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tools_toolaccess, deploy_accesssnapshot")
        cursor.execute("CHECKPOINT")


def grant_count(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tools_toolaccess")
        return cursor.fetchone()[0]


def table_state(connection) -> tuple:
    """What a no-op must not change: rows, their checksum, the id sequence, the snapshots."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(user_id * 131 + tool_id), 0) FROM tools_toolaccess"
        )
        grants = cursor.fetchone()
        cursor.execute("SELECT last_value, is_called FROM tools_toolaccess_id_seq")
        sequence = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM deploy_accesssnapshot")
        snapshots = cursor.fetchone()
    return grants, sequence, snapshots


MIRROR_FILE_SCRIPT = """\
import json, sys
source, target, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
document = json.loads(open(source, "rb").read())
position = 0
for tool in document["tools"]:
    kept = []
    for user in tool["users"]:
        if position % every:
            kept.append(user)
        position += 1
    tool["users"] = kept
open(target, "w").write(json.dumps(document, indent=2, sort_keys=True) + "\\n")
"""


def write_mirror_file(access_file: Path, mirror_file: Path) -> None:
    """The access file minus every 100th grant. In a child process, so this process stays small."""
    subprocess.run(
        [sys.executable, "-c", MIRROR_FILE_SCRIPT, str(access_file), str(mirror_file), str(MIRROR_REMOVED_EVERY)],
        check=True,
    )


def command(environment: dict, directory: Path, *args: str) -> tuple[float, int]:
    """Run `manage.py *args`; return (seconds, peak RSS in kB).

    The peak RSS comes from /usr/bin/time: a child forked straight from this
    process would count this process's own pages until it execs.
    """
    stdout_path, stderr_path, usage_path = (directory / name for name in ("stdout.txt", "stderr.txt", "usage.txt"))
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.run(
            [TIME, "--format", "%M", "--output", str(usage_path), sys.executable, str(MANAGE), *args],
            env=environment,
            stdout=stdout,
            stderr=stderr,
        )
        elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} exited {process.returncode}:\n{stderr_path.read_text()[-2000:]}"
        )
    return elapsed, int(usage_path.read_text().split()[-1])


def timed(step: Step, environment: dict, directory: Path, *args: str) -> None:
    seconds, peak_kb = command(environment, directory, *args)
    step.times.append(seconds)
    step.peak_rss_kb.append(peak_kb)
    report(step)


def report(step: Step) -> None:
    rss = f", peak RSS {step.peak_rss_kb[-1] / 1024:.0f} MB" if step.peak_rss_kb else ""
    print(f"  {step.name:<28} {step.times[-1]:7.2f} s{rss}", flush=True)


def print_table(steps: dict[str, Step], arguments) -> None:
    floor = steps["COPY (the floor)"].median
    grants = arguments.users * arguments.tools
    print()
    print(f"{grants:,} grants ({arguments.users:,} users x {arguments.tools} tools), median of {arguments.repeat} rounds:")
    print()
    print("| step | time | × COPY | peak RSS | target | notes |")
    print("|---|---|---|---|---|---|")
    for step in steps.values():
        rss = f"{max(step.peak_rss_kb) / 1024:.0f} MB" if step.peak_rss_kb else "—"
        print(
            f"| {step.name} | {step.median:.2f} s | {step.median / floor:.2f} | {rss} | "
            f"{TARGETS.get(step.name, '')} | {'; '.join(step.notes)} |"
        )


def _run_admin(admin_url: str, sql: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
