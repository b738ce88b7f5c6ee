"""The OmniTool user.

Across environments a user is the pair (username, email), email compared
case-insensitively: the access file names users that way, and an import never
grants to a username whose email differs.
"""
from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who signs in to the portal. Natural key: username."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        verbose_name = "user"
        verbose_name_plural = "users"

    def __str__(self) -> str:
        return self.username
