""""Legacy Reports" (legacy-reports) was retired: the tool and its grants go."""
from django.db import migrations

from tools.operations import RemoveTool


class Migration(migrations.Migration):
    dependencies = [("tools", "0002_rename_email_templates_management")]

    operations = [
        RemoveTool(
            "legacy-reports",
            name="Legacy Reports",
            description="Monthly reports from the old billing system.",
        ),
    ]
