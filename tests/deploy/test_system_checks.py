"""Deployment invariants as system checks (deploy/system_checks.py)."""
import pytest

from deploy.system_checks import check_debug_is_off_outside_local


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_debug_on_outside_local_is_an_error(settings, environment):
    settings.OMNITOOL_ENV, settings.DEBUG = environment, True

    assert [error.id for error in check_debug_is_off_outside_local()] == ["omnitool.E001"]


def test_debug_on_locally_and_off_elsewhere_pass(settings):
    settings.OMNITOOL_ENV, settings.DEBUG = "local", True
    assert check_debug_is_off_outside_local() == []
    settings.OMNITOOL_ENV, settings.DEBUG = "production", False
    assert check_debug_is_off_outside_local() == []


@pytest.mark.django_db
def test_verify_deploy_fails_deploy_checks_when_debug_is_on_in_staging(settings, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.OMNITOOL_ENV, settings.DEBUG = "staging", True

    with pytest.raises(CommandError):
        call_command("verify_deploy", "--check", "deploy-checks")

    assert "omnitool.E001" in capsys.readouterr().out
