"""Settings from the environment (omnitool/settings.py), checked as a real process."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "OMNITOOL_ENV": "production",
    "SECRET_KEY": "x7!" + "k2#Lq9@" * 8,
    "ALLOWED_HOSTS": "omnitool.example.com",
    "DATABASE_URL": "sqlite:///unused.sqlite3",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "OMNITOOL_ENV", "DEBUG", "DATABASE_URL"}}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_without_secret_key_fails_with_one_clear_line():
    environment = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}

    result = manage("check", **environment)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY must be set when OMNITOOL_ENV=production; "
        "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    ]


def test_unknown_environment_name_is_refused():
    result = manage("check", OMNITOOL_ENV="prod")

    assert result.returncode == 1
    assert "OMNITOOL_ENV='prod' is not one of local, staging, production." in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_local_settings_default_to_debug_and_sqlite():
    result = manage(
        "shell", "-c",
        "from django.conf import settings as s; print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.ALLOWED_HOSTS)",
        OMNITOOL_ENV="local",
    )

    assert result.stdout.strip().splitlines()[-1] == "True django.db.backends.sqlite3 ['localhost', '127.0.0.1']"


def test_production_settings_turn_on_https_protections():
    result = manage(
        "shell", "-c",
        "from django.conf import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
        **PRODUCTION,
    )

    assert result.stdout.strip().splitlines()[-1] == "False True True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_an_unreadable_number_names_the_variable():
    result = manage("check", BACKUP_KEEP="abc")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Configuration error: BACKUP_KEEP='abc' cannot be read as int."]


def test_a_boolean_must_be_spelled_like_one():
    result = manage("check", DEBUG="maybe")

    assert result.stderr.strip().splitlines() == [
        "Configuration error: DEBUG='maybe' is not a boolean; use true or false."
    ]


def test_an_unreadable_database_url_is_one_line_without_the_url():
    result = manage("check", DATABASE_URL="garbage://admin:hunter2@db/omnitool")

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("Configuration error: DATABASE_URL cannot be read: Scheme 'garbage://' is unknown.")
    assert "hunter2" not in result.stderr
