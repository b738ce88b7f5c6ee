"""/healthz/ (omnitool/views.py)."""
import pytest
from django.db import OperationalError


@pytest.mark.django_db
def test_healthz__reports_ok_and_the_release_version(client, settings):
    settings.RELEASE_VERSION = "v42"

    response = client.get("/healthz/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "version": "v42"}


@pytest.mark.django_db
def test_healthz__needs_no_login_and_is_never_cached(client):
    response = client.get("/healthz/")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz__is_503_when_the_database_is_unreachable(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError('could not connect to server: Connection refused (password="hunter2")')

    monkeypatch.setattr("omnitool.views.connection.cursor", unreachable)

    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert response.json()["status"] == "error"
    assert "hunter2" not in response.content.decode()
