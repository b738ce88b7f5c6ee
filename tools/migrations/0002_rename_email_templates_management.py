"""The demo catalogue once had "Email Templates management" (email-templates-management);
it became "Email Templates" (email-templates). Every grant follows the tool."""
from django.db import migrations

from tools.operations import RenameTool


class Migration(migrations.Migration):
    dependencies = [("tools", "0001_initial")]

    operations = [
        RenameTool(
            "email-templates-management",
            "email-templates",
            new_name="Email Templates",
            old_name="Email Templates management",
        ),
    ]
