"""Helpers shared by the access import/export tests: building access files and
fingerprinting the grants table so a test can prove nothing was written."""
import hashlib
import io
import json
from pathlib import Path

from django.core.management import call_command

from django.contrib.auth import get_user_model

from deploy.access_file import ACCESS_SCHEMA
from deploy.models import AccessSnapshot
from tools.models import Tool, ToolAccess


def access_document(tools: dict[str, list], environment: str = "local", names: dict[str, str] | None = None) -> dict:
    """An access file as a dict. `tools` maps key -> usernames or (username, email) pairs."""
    names = names or {}
    document_tools = []
    for key in sorted(tools):
        users = []
        for entry in tools[key]:
            username, email = (entry, f"{entry}@example.com") if isinstance(entry, str) else entry
            users.append({"username": username, "email": email})
        document_tools.append(
            {"key": key, "name": names.get(key, key.replace("-", " ").title()), "users": sorted(users, key=lambda u: u["username"])}
        )
    return {"schema": ACCESS_SCHEMA, "environment": environment, "tools": document_tools}


def access_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_access_file(path: Path, tools: dict[str, list], **kwargs) -> Path:
    path.write_bytes(access_bytes(access_document(tools, **kwargs)))
    return path


def database_fingerprint() -> dict:
    """Row counts of the tables an import could touch, and a checksum of every grant row."""
    digest = hashlib.sha256()
    for row in ToolAccess.objects.order_by("pk").values_list("pk", "user_id", "tool_id", "granted_at", "granted_by_id"):
        digest.update(repr(row).encode())
    return {
        "users": get_user_model().objects.count(),
        "tools": Tool.objects.count(),
        "grants": ToolAccess.objects.count(),
        "snapshots": AccessSnapshot.objects.count(),
        "grants_sha256": digest.hexdigest(),
    }


class TerminalStringIO(io.StringIO):
    """A stream that says it is a terminal, for the progress-on-a-tty tests."""

    def isatty(self) -> bool:
        return True


def run_command(name: str, *args, stderr=None, **options) -> str:
    """call_command `name` and return what it printed on stdout."""
    stdout = io.StringIO()
    call_command(name, *args, stdout=stdout, stderr=stderr or io.StringIO(), no_color=True, **options)
    return stdout.getvalue()
