"""`notify` against a real HTTP server on 127.0.0.1: bodies per webhook format,
format guessing, and every way delivery can fail being a warning with exit 0."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command

from deploy.notifications import guess_webhook_format


class RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(self.server.answer_status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def webhook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.received = []
    server.answer_status = 200
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """Accepts TCP connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    listener.close()


@pytest.fixture
def webhook_settings(settings, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    settings.OMNITOOL_ENV = "staging"
    settings.RELEASE_VERSION = "v42"
    settings.DEPLOY_WEBHOOK_URL = ""
    settings.DEPLOY_WEBHOOK_FORMAT = ""
    settings.DEPLOY_WEBHOOK_TIMEOUT = 5.0
    return settings


def notify(*args, **options):
    stdout, stderr = StringIO(), StringIO()
    call_command("notify", *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def test_notify__json_format_posts_status_message_environment_version_and_url(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_settings.DEPLOY_WEBHOOK_FORMAT = "json"

    stdout, stderr = notify(
        "--status", "success", "--message", "Deployed abc123", "--url", "https://omnitool.example.com"
    )

    [request] = webhook_server.received
    assert request["path"] == "/hooks/secret-token"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {
        "status": "success",
        "message": "Deployed abc123",
        "environment": "staging",
        "version": "v42",
        "url": "https://omnitool.example.com",
    }
    assert stdout == "Notified 127.0.0.1 (json): success.\n"
    assert stderr == ""


def test_notify__slack_format_posts_text(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_settings.DEPLOY_WEBHOOK_FORMAT = "slack"

    notify("--status", "failure", "--message", "Release phase failed", "--url", "https://omnitool.example.com")

    assert [request["body"] for request in webhook_server.received] == [
        {"text": "❌ OmniTool staging (v42) failure: Release phase failed\nhttps://omnitool.example.com"}
    ]


def test_notify__discord_format_posts_content(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_settings.DEPLOY_WEBHOOK_FORMAT = "discord"

    notify("--status", "success", "--message", "Deployed abc123")

    assert [request["body"] for request in webhook_server.received] == [
        {"content": "✅ OmniTool staging (v42) success: Deployed abc123"}
    ]


def test_notify__discord_content_is_cut_to_discords_limit(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_settings.DEPLOY_WEBHOOK_FORMAT = "discord"

    notify("--status", "success", "--message", "x" * 5000)

    content = webhook_server.received[0]["body"]["content"]
    assert len(content) == 2000
    assert content.endswith("x…")


def test_notify__sends_its_own_user_agent_because_discord_refuses_urllibs(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url

    notify("--status", "success", "--message", "Deployed")

    assert webhook_server.received[0]["headers"]["User-Agent"].startswith("OmniTool-notify/")


def test_notify__unknown_host_without_format_gets_generic_json(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url

    notify("--status", "success", "--message", "Deployed")

    assert webhook_server.received[0]["body"]["status"] == "success"
    assert set(webhook_server.received[0]["body"]) == {"status", "message", "environment", "version", "url"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
        ("https://discord.com/api/webhooks/1/abc", "discord"),
        ("https://discordapp.com/api/webhooks/1/abc", "discord"),
        ("https://DISCORD.com/api/webhooks/1/abc", "discord"),
        ("https://hooks.slack.com.evil.example/services/x", "json"),
        ("https://chat.example.com/hook", "json"),
    ],
)
def test_guess_webhook_format__follows_the_urls_host(url, expected):
    assert guess_webhook_format(url) == expected


def test_notify__no_webhook_url_sends_nothing_and_says_so_at_verbosity_2(webhook_server, webhook_settings):
    stdout, stderr = notify("--status", "success", "--message", "Deployed", verbosity=2)

    assert webhook_server.received == []
    assert stdout == "DEPLOY_WEBHOOK_URL is not set; no notification sent.\n"
    assert stderr == ""


def test_notify__no_webhook_url_is_silent_at_verbosity_1(webhook_settings):
    assert notify("--status", "success", "--message", "Deployed") == ("", "")


def test_notify__server_error_is_one_warning_line(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_server.answer_status = 500

    stdout, stderr = notify("--status", "success", "--message", "Deployed")

    assert stdout == ""
    assert stderr == (
        "Warning: deploy notification not delivered to 127.0.0.1 (json): HTTP 500 Internal Server Error; "
        "the deploy goes on.\n"
    )


def test_notify__refused_connection_is_a_warning(webhook_settings):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    webhook_settings.DEPLOY_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"

    stdout, stderr = notify("--status", "failure", "--message", "Deployed")

    assert stderr.startswith("Warning: deploy notification not delivered to 127.0.0.1 (json): ")
    assert "refused" in stderr.lower()
    assert stderr.count("\n") == 1


def test_notify__silent_server_is_a_warning_within_the_timeout(silent_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = silent_server
    webhook_settings.DEPLOY_WEBHOOK_TIMEOUT = 0.5

    started = time.monotonic()
    stdout, stderr = notify("--status", "success", "--message", "Deployed")
    elapsed = time.monotonic() - started

    assert elapsed < 3
    assert stderr == (
        "Warning: deploy notification not delivered to 127.0.0.1 (json): no answer within 0.5 s; "
        "the deploy goes on.\n"
    )


def test_notify__timeout_defaults_to_five_seconds():
    from django.conf import settings

    assert settings.DEPLOY_WEBHOOK_TIMEOUT == 5.0


def test_notify__unknown_webhook_format_is_a_warning_and_nothing_is_sent(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_settings.DEPLOY_WEBHOOK_FORMAT = "teams"

    stdout, stderr = notify("--status", "success", "--message", "Deployed")

    assert webhook_server.received == []
    assert stderr == (
        "Warning: deploy notification not delivered: DEPLOY_WEBHOOK_FORMAT='teams' is not one of "
        "slack, discord, json; the deploy goes on.\n"
    )


def test_notify__non_http_webhook_url_is_refused_with_a_warning(webhook_settings, tmp_path):
    webhook_settings.DEPLOY_WEBHOOK_URL = f"file://{tmp_path}/hook"

    stdout, stderr = notify("--status", "success", "--message", "Deployed")

    assert stderr == (
        "Warning: deploy notification not delivered: DEPLOY_WEBHOOK_URL is not an http(s) URL with a host; "
        "the deploy goes on.\n"
    )


def test_notify__output_never_shows_the_webhooks_secret_path(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url
    webhook_server.answer_status = 404

    stdout, stderr = notify("--status", "success", "--message", "Deployed", format="json")

    assert "secret-token" not in stdout + stderr


def test_notify__json_output_is_one_document(webhook_server, webhook_settings):
    webhook_settings.DEPLOY_WEBHOOK_URL = webhook_server.url

    stdout, stderr = notify("--status", "success", "--message", "Deployed", format="json")

    assert json.loads(stdout) == {
        "sent": True,
        "status": "success",
        "host": "127.0.0.1",
        "webhook_format": "json",
        "http_status": 200,
        "problem": None,
    }


def test_notify__subprocess_exits_0_when_the_webhook_is_down(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DEPLOY_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "notify", "--status", "failure", "--message", "Release failed"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.startswith("Warning: deploy notification not delivered to 127.0.0.1 (json):")
