"""Deploy notifications: one message about a deploy, posted to a chat webhook.

`notify` builds a `Notification`, finds the `Webhook` in the settings
(DEPLOY_WEBHOOK_URL, DEPLOY_WEBHOOK_FORMAT, DEPLOY_WEBHOOK_TIMEOUT) and calls
`deliver`. The body depends on the webhook's format: Slack's incoming webhooks
take {"text": ...}, Discord's take {"content": ...}, anything else gets a plain
JSON document. A notification must never fail a deploy, so every way delivery
can go wrong becomes one `NotificationNotDelivered` with a one-line reason,
which the command prints as a warning.
"""
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.conf import settings

STATUSES = ("success", "failure")
WEBHOOK_FORMATS = ("slack", "discord", "json")
SLACK_HOSTS = ("hooks.slack.com",)
DISCORD_HOSTS = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
DISCORD_CONTENT_LIMIT = 2000  # Discord rejects longer messages with HTTP 400
# Discord's edge answers 403 to urllib's default "Python-urllib/3.x" agent.
USER_AGENT = "OmniTool-notify/1"
STATUS_ICONS = {"success": "✅", "failure": "❌"}


class NotificationNotDelivered(Exception):
    """The webhook did not accept the notification; the message says why in one line."""


class WebhookMisconfigured(NotificationNotDelivered):
    """DEPLOY_WEBHOOK_URL or DEPLOY_WEBHOOK_FORMAT cannot be used as they are."""


@dataclass(frozen=True)
class Notification:
    """What happened in one deploy, as the webhook's reader should see it."""

    status: str  # one of STATUSES
    message: str
    environment: str
    version: str
    url: str = ""  # the deployment's address, if there is one to link to

    def text(self) -> str:
        """The one human line that Slack and Discord show."""
        line = f"{STATUS_ICONS[self.status]} OmniTool {self.environment} ({self.version}) {self.status}: {self.message}"
        return f"{line}\n{self.url}" if self.url else line


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str  # one of WEBHOOK_FORMATS
    timeout: float

    @property
    def host(self) -> str:
        """What output may name: the host only, since webhook paths carry secret tokens."""
        return urlsplit(self.url).hostname or "?"


def guess_webhook_format(url: str) -> str:
    """slack or discord when the URL's host is theirs, json otherwise."""
    host = (urlsplit(url).hostname or "").lower()
    if host in SLACK_HOSTS:
        return "slack"
    if host in DISCORD_HOSTS:
        return "discord"
    return "json"


def webhook_from_settings() -> Webhook | None:
    """The configured webhook, or None when DEPLOY_WEBHOOK_URL is empty (notifications are off)."""
    url = (getattr(settings, "DEPLOY_WEBHOOK_URL", "") or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookMisconfigured("DEPLOY_WEBHOOK_URL is not an http(s) URL with a host")
    webhook_format = (getattr(settings, "DEPLOY_WEBHOOK_FORMAT", "") or "").strip().lower()
    if not webhook_format:
        webhook_format = guess_webhook_format(url)
    elif webhook_format not in WEBHOOK_FORMATS:
        raise WebhookMisconfigured(
            f"DEPLOY_WEBHOOK_FORMAT={webhook_format!r} is not one of {', '.join(WEBHOOK_FORMATS)}"
        )
    timeout = float(getattr(settings, "DEPLOY_WEBHOOK_TIMEOUT", 5.0))
    return Webhook(url=url, format=webhook_format, timeout=timeout)


def webhook_body(notification: Notification, webhook_format: str) -> dict:
    """The JSON document `webhook_format` expects."""
    if webhook_format == "slack":
        return {"text": notification.text()}
    if webhook_format == "discord":
        content = notification.text()
        if len(content) > DISCORD_CONTENT_LIMIT:
            content = content[: DISCORD_CONTENT_LIMIT - 1] + "…"
        return {"content": content}
    return asdict(notification)


def deliver(notification: Notification, webhook: Webhook) -> int:
    """POST the notification; return the HTTP status, or raise NotificationNotDelivered."""
    body = json.dumps(webhook_body(notification, webhook.format)).encode()
    request = urllib.request.Request(
        webhook.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=webhook.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        raise NotificationNotDelivered(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise NotificationNotDelivered(_reason(error.reason, webhook.timeout)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise NotificationNotDelivered(_reason(error, webhook.timeout)) from None
    if not 200 <= status < 300:
        raise NotificationNotDelivered(f"HTTP {status}")
    return status


def _reason(error, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
