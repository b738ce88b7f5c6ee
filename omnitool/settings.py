"""OmniTool settings, read from the environment (see the README's configuration table).

`OMNITOOL_ENV` picks the environment: `local` is for development and has safe
defaults; `staging` and `production` require a real SECRET_KEY and turn on
every HTTPS protection that Heroku's router allows.
"""
import os
from pathlib import Path

import dj_database_url
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class StrictEnv(environ.Env):
    """django-environ, except that a value it cannot read stops start-up with one
    line naming the variable, and a boolean must be spelled like one."""

    BOOLEAN_FALSE_STRINGS = ("false", "off", "no", "n", "0", "")

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        raw = os.environ.get(var)
        if cast is bool and raw is not None:
            words = (*self.BOOLEAN_TRUE_STRINGS, *self.BOOLEAN_FALSE_STRINGS)
            if raw.strip().lower() not in words:
                raise ImproperlyConfigured(f"{var}={raw!r} is not a boolean; use true or false.")
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError:
            kind = getattr(cast, "__name__", "the expected type")
            raise ImproperlyConfigured(f"{var}={raw!r} cannot be read as {kind}.") from None


env = StrictEnv()

ENVIRONMENTS = ("local", "staging", "production")
OMNITOOL_ENV = env.str("OMNITOOL_ENV", default="local")
if OMNITOOL_ENV not in ENVIRONMENTS:
    raise ImproperlyConfigured(
        f"OMNITOOL_ENV={OMNITOOL_ENV!r} is not one of {', '.join(ENVIRONMENTS)}."
    )
IS_LOCAL = OMNITOOL_ENV == "local"

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not IS_LOCAL:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when OMNITOOL_ENV={OMNITOOL_ENV}; "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    SECRET_KEY = "django-insecure-omnitool-local-development-key-not-for-deployment"

DEBUG = env.bool("DEBUG", default=IS_LOCAL)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if IS_LOCAL else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The release a deployment runs, shown by /healthz/ and checked by `smoke --expect-version`.
# Heroku's dyno metadata sets HEROKU_RELEASE_VERSION (v42) and HEROKU_SLUG_COMMIT.
RELEASE_VERSION = env.str(
    "RELEASE_VERSION",
    default=env.str("HEROKU_RELEASE_VERSION", default=env.str("HEROKU_SLUG_COMMIT", default="dev")),
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "accounts",
    "tools",
    "deploy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "omnitool.urls"
WSGI_APPLICATION = "omnitool.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "omnitool.context_processors.environment",
            ],
        },
    },
]

try:
    DATABASES = {
        "default": dj_database_url.config(
            default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
            conn_max_age=env.int("CONN_MAX_AGE", default=0 if IS_LOCAL else 600),
            conn_health_checks=True,
        )
    }
except ValueError as error:  # the message names the scheme, never the URL (it may hold a password)
    raise ImproperlyConfigured(f"DATABASE_URL cannot be read: {error}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE: a transaction takes SQLite's write lock when it begins, so two
    # imports serialise instead of failing on a lock upgrade (tools/locking.py).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 30})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# HTTPS everywhere outside local. Heroku's router terminates TLS and says so in
# X-Forwarded-Proto, which is what SECURE_PROXY_SSL_HEADER trusts.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not IS_LOCAL)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = not IS_LOCAL
CSRF_COOKIE_SECURE = not IS_LOCAL
SECURE_HSTS_SECONDS = 0 if IS_LOCAL else 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = not IS_LOCAL
SECURE_HSTS_PRELOAD = not IS_LOCAL
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Deploy machinery (deploy/).
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(BASE_DIR / "var" / "backups")))
BACKUP_KEEP = env.int("BACKUP_KEEP", default=10)
BACKUP_ON_RELEASE = env.bool("BACKUP_ON_RELEASE", default=False)  # `release` backs up first, as `release --backup`
ACCESS_FILE = Path(env.str("ACCESS_FILE", default=str(BASE_DIR / "fixtures" / "access.json")))
ACCESS_FILE_MAX_BYTES = env.int("ACCESS_FILE_MAX_BYTES", default=100 * 1024 * 1024)
ACCESS_SNAPSHOT_KEEP = env.int("ACCESS_SNAPSHOT_KEEP", default=10)
# `notify`: where deploy messages go (none: notify does nothing), as slack|discord|json (default: from the host).
DEPLOY_WEBHOOK_URL = env.str("DEPLOY_WEBHOOK_URL", default="")
DEPLOY_WEBHOOK_FORMAT = env.str("DEPLOY_WEBHOOK_FORMAT", default="")
DEPLOY_WEBHOOK_TIMEOUT = env.float("DEPLOY_WEBHOOK_TIMEOUT", default=5.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
