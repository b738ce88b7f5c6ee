"""Granting tools in bulk: the admin's "Grant to all active users except…"."""
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from tools.locking import acquire_grants_lock
from tools.models import Tool, ToolAccess

GRANT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class BulkGrantResult:
    created: dict[str, int]  # tool key -> grants created
    excluded_usernames: list[str]

    @property
    def total_created(self) -> int:
        return sum(self.created.values())


def grant_to_all_active_users_except(
    tools: Iterable[Tool], excluded_user_ids: Iterable[int], granted_by=None
) -> BulkGrantResult:
    """Grant each tool to every active user not excluded. Existing grants are
    kept, so running it twice changes nothing; it never removes a grant."""
    User = get_user_model()
    excluded = set(excluded_user_ids)
    user_ids = [
        user_id
        for user_id in User.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
        if user_id not in excluded
    ]
    created: dict[str, int] = {}
    with transaction.atomic():
        # The lock imports and access rollbacks take: without it, this and a concurrent
        # import each hold rows the other is about to write and PostgreSQL aborts one of
        # them as a deadlock (tests/hardening/test_concurrency.py).
        acquire_grants_lock()
        for tool in tools:
            granted = set(ToolAccess.objects.filter(tool=tool).values_list("user_id", flat=True))
            new_grants = [
                ToolAccess(user_id=user_id, tool=tool, granted_by=granted_by)
                for user_id in user_ids
                if user_id not in granted
            ]
            # ignore_conflicts: a concurrent import may add the same pair first.
            ToolAccess.objects.bulk_create(new_grants, batch_size=GRANT_BATCH_SIZE, ignore_conflicts=True)
            created[tool.key] = len(new_grants)
    usernames = sorted(User.objects.filter(pk__in=excluded).values_list("username", flat=True))
    return BulkGrantResult(created=created, excluded_usernames=usernames)
