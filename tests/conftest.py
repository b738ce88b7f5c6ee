"""Shared fixtures: users, tools and grants, and the PostgreSQL marker's rules."""
import os

import pytest
from django.db import connection

from tools.models import Tool, ToolAccess

PASSWORD = "correct-horse-battery"


def pytest_runtest_setup(item):
    """Tests marked `postgresql` run only on PostgreSQL; under
    OMNITOOL_REQUIRE_POSTGRESQL=1 (CI's PostgreSQL pass) a skip becomes a failure."""
    if item.get_closest_marker("postgresql") and connection.vendor != "postgresql":
        message = "needs PostgreSQL: set DATABASE_URL=postgres://..."
        if os.environ.get("OMNITOOL_REQUIRE_POSTGRESQL"):
            pytest.fail(f"{message} (OMNITOOL_REQUIRE_POSTGRESQL is set, so this may not be skipped)")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Templates use {% static %}; tests need no collectstatic manifest (the
    gunicorn-based tests build a real one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, email: str | None = None, **fields):
        return django_user_model.objects.create_user(
            username=username, email=email if email is not None else f"{username}@example.com", password=PASSWORD, **fields
        )

    return make


@pytest.fixture
def make_tool():
    def make(key: str, name: str | None = None, description: str = ""):
        return Tool.objects.create(key=key, name=name or key.replace("-", " ").title(), description=description)

    return make


@pytest.fixture
def grant():
    def make(user, tool) -> ToolAccess:
        return ToolAccess.objects.create(user=user, tool=tool)

    return make


@pytest.fixture
def catalogue_tools(db) -> dict[str, Tool]:
    """The catalogue's tools, as migrate's sync created them."""
    return {tool.key: tool for tool in Tool.objects.all()}


@pytest.fixture
def demo_data(db):
    from tools.demo import load_demo_data

    return load_demo_data()


def grant_pairs() -> set[tuple[str, str]]:
    """The grants table as (username, tool key) pairs: what tests compare."""
    return set(ToolAccess.objects.values_list("user__username", "tool__key"))
