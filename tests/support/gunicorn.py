"""A real `gunicorn omnitool.wsgi` for tests that need a running deployment.

    from tests.support.gunicorn import running_gunicorn

    with running_gunicorn(tmp_path, environment={"RELEASE_VERSION": "v7"}) as server:
        urllib.request.urlopen(server.url + "/healthz/")

`running_gunicorn(directory, ...)` prepares a site in `directory` and serves it:

1. the database: a new SQLite file `directory/db.sqlite3` by default, or the
   `database_url` given (PostgreSQL: pass a database you own and drop it yourself);
   `manage.py migrate`, then `manage.py load_demo` (users admin/admin and
   alice, bob, carol, dave, user_a with `tools.demo.DEMO_USER_PASSWORD`).
   A new SQLite site is prepared once per test process and copied after that
   (load_demo spends a second hashing passwords);
2. `manage.py collectstatic` into `directory/staticfiles` (the STATIC_ROOT the
   server gets), so whitenoise serves hashed files with long cache headers;
3. gunicorn on a free 127.0.0.1 port (the parent binds port 0 and hands the
   socket over as `fd://N`, so no other process can take the port meanwhile),
   waits until it answers HTTP, yields a `GunicornServer` (`url`, `process`,
   `log()` …) and stops it on exit.

The server's environment is the test process's, minus every variable the
settings read, plus `SERVER_DEFAULTS`, plus `environment` (which wins: pass
`{"OMNITOOL_ENV": "production", "SECRET_KEY": ..., "ALLOWED_HOSTS": "127.0.0.1"}`
for production settings). Preparation (migrate, load_demo, collectstatic) runs
as `OMNITOOL_ENV=local` on the same database and STATIC_ROOT, because
`load_demo` refuses production and preparing is not what is under test.

Module-scoped use (one server for many tests):

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        with running_gunicorn(tmp_path_factory.mktemp("site")) as server:
            yield server

Only loopback is used. Each step that fails raises `GunicornError` with the
command's output, so a broken fixture says why.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Variables the settings (or a deploy command) read; a test's own environment must not leak into the server.
SETTINGS_VARIABLES = frozenset(
    {
        "OMNITOOL_ENV", "DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
        "RELEASE_VERSION", "HEROKU_RELEASE_VERSION", "HEROKU_SLUG_COMMIT", "STATIC_ROOT", "SECURE_SSL_REDIRECT",
        "CONN_MAX_AGE", "BACKUP_DIR", "BACKUP_KEEP", "ACCESS_FILE", "ACCESS_FILE_MAX_BYTES", "ACCESS_SNAPSHOT_KEEP",
        "LOG_LEVEL", "PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS", "SMOKE_USERNAME", "SMOKE_PASSWORD",
        "GITHUB_STEP_SUMMARY", "DEPLOY_WEBHOOK_URL", "DEPLOY_WEBHOOK_FORMAT", "DJANGO_SETTINGS_MODULE",
    }
)

# A local deployment that behaves like a real one where smoke looks: DEBUG off, so
# {% static %} links to the hashed files that whitenoise caches for a year.
SERVER_DEFAULTS = {
    "OMNITOOL_ENV": "local",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "RELEASE_VERSION": "test",
    "DJANGO_SETTINGS_MODULE": "omnitool.settings",
}


class GunicornError(RuntimeError):
    """Preparing or starting the server failed; the message carries the output."""


@dataclass
class GunicornServer:
    """A running gunicorn: where it answers and what it serves."""

    url: str  # http://127.0.0.1:PORT, no trailing slash
    port: int
    process: subprocess.Popen
    environment: dict[str, str]  # the server's full environment
    database_url: str
    static_root: Path
    log_path: Path
    directory: Path
    database_path: Path | None = field(default=None)  # the SQLite file, when the database is one

    def log(self) -> str:
        """gunicorn's output so far (access log and errors), for assertion messages."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def manage(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `manage.py ARGUMENTS` against this server's database, as local settings."""
        return run_manage(arguments, preparation_environment(self.environment), check=check)


def server_environment(database_url: str, static_root: Path, environment: Mapping[str, str] | None) -> dict[str, str]:
    """The environment gunicorn runs with (see the module docstring)."""
    server_env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    server_env.update(SERVER_DEFAULTS)
    server_env.update({"DATABASE_URL": database_url, "STATIC_ROOT": str(static_root)})
    server_env.update(environment or {})
    return server_env


def preparation_environment(server_env: Mapping[str, str]) -> dict[str, str]:
    """The server's environment as local settings: same database and STATIC_ROOT."""
    prepared = {key: value for key, value in server_env.items() if key not in {"SECRET_KEY", "SECURE_SSL_REDIRECT"}}
    prepared["OMNITOOL_ENV"] = "local"
    return prepared


def run_manage(arguments: tuple[str, ...] | list[str], env: Mapping[str, str], check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT_ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise GunicornError(
            f"manage.py {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def prepare_site(server_env: Mapping[str, str], *, migrate: bool = True, load_demo: bool = True,
                 collectstatic: bool = True) -> None:
    """Migrate, load the demo data and collect static files for `server_env`'s database and STATIC_ROOT.

    The steps run as `manage.py` commands in one process (one Django start-up instead of three).
    """
    steps = [
        step
        for step, wanted in (
            (["migrate", "--noinput"], migrate),
            (["load_demo"], load_demo),
            (["collectstatic", "--noinput"], collectstatic),
        )
        if wanted
    ]
    if not steps:
        return
    script = (
        "import sys, django; django.setup(); from django.core.management import call_command\n"
        f"for step in {steps!r}: call_command(*step, verbosity=0)\n"
    )
    env = preparation_environment(server_env)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    if result.returncode != 0:
        commands = "; ".join("manage.py " + " ".join(step) for step in steps)
        raise GunicornError(f"{commands} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


# Prepared SQLite databases and collected static files, copied instead of prepared
# again: load_demo alone spends over a second hashing passwords.
_prepared_databases: dict[tuple[bool, bool], Path] = {}  # (migrate, load_demo) -> a db.sqlite3
_collected_static: list[Path] = []


def _template_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="omnitool-site-"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


def prepare_sqlite_site(database_path: Path, static_root: Path, server_env: Mapping[str, str], *, migrate: bool,
                        load_demo: bool, collectstatic: bool) -> None:
    """Like `prepare_site` for a new SQLite file, but each step is done once per process and copied after."""
    if migrate or load_demo:
        template = _prepared_databases.get((migrate, load_demo))
        if template is None:
            template = _template_directory() / "db.sqlite3"
            prepare_site(
                {**server_env, "DATABASE_URL": f"sqlite:///{template}"},
                migrate=migrate, load_demo=load_demo, collectstatic=False,
            )
            _prepared_databases[(migrate, load_demo)] = template
        shutil.copyfile(template, database_path)
    if collectstatic:
        if not _collected_static:
            collected = _template_directory() / "staticfiles"
            prepare_site({**server_env, "STATIC_ROOT": str(collected)}, migrate=False, load_demo=False)
            _collected_static.append(collected)
        shutil.copytree(_collected_static[0], static_root, dirs_exist_ok=True)


def listening_socket() -> socket.socket:
    """A socket bound to a free loopback port, ready to hand to gunicorn."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


def wait_until_answering(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Poll `url` until any HTTP answer (a 503 is an answer too) or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise GunicornError(f"gunicorn exited with {process.returncode} before answering:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise GunicornError(f"gunicorn did not answer {url} within {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_gunicorn(
    directory: Path,
    environment: Mapping[str, str] | None = None,
    *,
    database_url: str | None = None,
    migrate: bool = True,
    load_demo: bool = True,
    collectstatic: bool = True,
    app: str = "omnitool.wsgi",
    workers: int = 1,
    timeout: float = 30,
) -> Iterator[GunicornServer]:
    """Prepare a site in `directory` and serve it with gunicorn on 127.0.0.1; yield a `GunicornServer`.

    `environment` overrides the server's settings variables (OMNITOOL_ENV, SECRET_KEY,
    ALLOWED_HOSTS, SECURE_SSL_REDIRECT, RELEASE_VERSION ...). `database_url` replaces the
    default SQLite file `directory/db.sqlite3`. Turn off `migrate`, `load_demo` or
    `collectstatic` to serve a site without them (e.g. no static manifest, or a
    database that is not there). `app` is what gunicorn serves: a module, `module:callable`
    or `module:factory('argument')` (tests.support.faulty_apps:with_portal('leaky') is a
    deliberately broken one). `timeout`: seconds to wait for the first answer.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    database_path = None
    if database_url is None:
        database_path = directory / "db.sqlite3"
        database_url = f"sqlite:///{database_path}"
    static_root = directory / "staticfiles"
    server_env = server_environment(database_url, static_root, environment)
    if database_path is not None and not database_path.exists():
        prepare_sqlite_site(
            database_path, static_root, server_env, migrate=migrate, load_demo=load_demo, collectstatic=collectstatic
        )
    else:
        prepare_site(server_env, migrate=migrate, load_demo=load_demo, collectstatic=collectstatic)

    listener = listening_socket()
    port = listener.getsockname()[1]
    log_path = directory / "gunicorn.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", app,
                "--bind", f"fd://{listener.fileno()}",
                "--workers", str(workers),
                "--graceful-timeout", "2",
                "--access-logfile", "-", "--error-logfile", "-",
            ],
            cwd=PROJECT_ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
        )
    # gunicorn holds its own copy of the socket now.
    listener.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url + "/healthz/", process, log_path, timeout)
        yield GunicornServer(
            url=url, port=port, process=process, environment=server_env, database_url=database_url,
            static_root=static_root, log_path=log_path, directory=directory, database_path=database_path,
        )
    finally:
        stop(process)
