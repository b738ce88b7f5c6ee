"""Demo data for `make run` and the tests: users, and the seed's grants
(Invoice Generator for everyone except user_a)."""
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from tools.grants import grant_to_all_active_users_except
from tools.models import Tool, ToolAccess
from tools.sync import sync_catalogue

DEMO_ADMIN_USERNAME = "admin"
DEMO_ADMIN_PASSWORD = "admin"
DEMO_USER_PASSWORD = "omnitool-demo"
DEMO_USERNAMES = ("alice", "bob", "carol", "dave", "user_a")
DEMO_GRANTS = {
    "email-templates": ("alice", "bob"),
    "team-directory": ("alice", "carol", "dave"),
}
EVERYONE_EXCEPT_USER_A = "invoice-generator"


@dataclass(frozen=True)
class DemoData:
    admin_username: str
    admin_password: str
    user_password: str
    usernames: tuple[str, ...]


@transaction.atomic
def load_demo_data() -> DemoData:
    """Create (or reset) the demo users and grants. Safe to run again."""
    User = get_user_model()
    sync_catalogue()
    admin, _ = User.objects.get_or_create(
        username=DEMO_ADMIN_USERNAME,
        defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
    )
    admin.set_password(DEMO_ADMIN_PASSWORD)
    admin.save()
    users = {}
    for username in DEMO_USERNAMES:
        first_name = "" if username == "user_a" else username.capitalize()
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com", "first_name": first_name}
        )
        user.set_password(DEMO_USER_PASSWORD)
        user.save()
        users[username] = user
    grant_to_all_active_users_except(
        Tool.objects.filter(key=EVERYONE_EXCEPT_USER_A), [users["user_a"].pk]
    )
    tools = Tool.objects.in_bulk(list(DEMO_GRANTS), field_name="key")
    ToolAccess.objects.bulk_create(
        [
            ToolAccess(user=users[username], tool=tools[key])
            for key, usernames in DEMO_GRANTS.items()
            for username in usernames
        ],
        ignore_conflicts=True,
    )
    return DemoData(DEMO_ADMIN_USERNAME, DEMO_ADMIN_PASSWORD, DEMO_USER_PASSWORD, DEMO_USERNAMES)
