"""Migration operations that rename or remove a tool while keeping (or cleaning
up) its grants. Use them in data migrations of any app that depends on tools:

    operations = [
        RenameTool("email-templates-management", "email-templates", new_name="Email Templates",
                   old_name="Email Templates management"),
        RemoveTool("legacy-reports", name="Legacy Reports"),
    ]

Both are no-ops (with a log line) on a database that lacks the tool, so a
fresh database and an old one end up equal to the catalogue after `migrate`.
"""
import logging

from django.db.migrations.operations.base import Operation

logger = logging.getLogger(__name__)


def rename_tool(apps, using: str, old_key: str, new_key: str, new_name: str | None = None) -> str:
    """Move a tool, with its grants, from `old_key` to `new_key`; return what happened.

    When `new_key` already exists, the grants are merged onto it without
    duplicates and the old tool is deleted.
    """
    Tool = apps.get_model("tools", "Tool")
    ToolAccess = apps.get_model("tools", "ToolAccess")
    old = Tool.objects.using(using).filter(key=old_key).first()
    if old is None:
        return f"no tool {old_key!r}: nothing to rename"
    target = Tool.objects.using(using).filter(key=new_key).first()
    if target is None:
        old.key = new_key
        if new_name and not Tool.objects.using(using).filter(name=new_name).exclude(pk=old.pk).exists():
            old.name = new_name
        old.save(using=using, update_fields=["key", "name"])
        return f"renamed tool {old_key!r} to {new_key!r}"
    already_granted = ToolAccess.objects.using(using).filter(tool=target).values("user_id")
    duplicates, _ = ToolAccess.objects.using(using).filter(tool=old, user_id__in=already_granted).delete()
    moved = ToolAccess.objects.using(using).filter(tool=old).update(tool=target)
    old.delete()
    return f"merged tool {old_key!r} into {new_key!r}: {moved} grants moved, {duplicates} duplicates dropped"


def remove_tool(apps, using: str, key: str) -> str:
    Tool = apps.get_model("tools", "Tool")
    ToolAccess = apps.get_model("tools", "ToolAccess")
    tool = Tool.objects.using(using).filter(key=key).first()
    if tool is None:
        return f"no tool {key!r}: nothing to remove"
    grants, _ = ToolAccess.objects.using(using).filter(tool=tool).delete()
    tool.delete()
    return f"removed tool {key!r} and its {grants} grants"


def restore_tool(apps, using: str, key: str, name: str, description: str) -> str:
    Tool = apps.get_model("tools", "Tool")
    if Tool.objects.using(using).filter(key=key).exists():
        return f"tool {key!r} exists: nothing to restore"
    if Tool.objects.using(using).filter(name=name).exists():
        name = f"{name} ({key})"
    Tool.objects.using(using).create(key=key, name=name, description=description)
    return f"recreated tool {key!r} without grants"


class ToolDataOperation(Operation):
    """Base for tool data operations: no schema change, runs on the tools app's models."""

    reduces_to_sql = False
    reversible = True

    def state_forwards(self, app_label, state) -> None:
        pass  # data only

    def _allowed(self, schema_editor, from_state) -> bool:
        return self.allow_migrate_model(schema_editor.connection.alias, from_state.apps.get_model("tools", "Tool"))

    def _report(self, message: str) -> None:
        logger.info("%s: %s", self.describe(), message)


class RenameTool(ToolDataOperation):
    """Rename a tool's key (and name), keeping every grant.

    Onto a key that already exists, grants are merged without duplicates.
    Reversible: backwards renames `new_key` to `old_key` (and `old_name`) again;
    after a merge the merged grants all stay with the tool that moves back.
    """

    def __init__(self, old_key: str, new_key: str, new_name: str | None = None, old_name: str | None = None):
        self.old_key, self.new_key, self.new_name, self.old_name = old_key, new_key, new_name, old_name

    def deconstruct(self):
        kwargs = {"old_key": self.old_key, "new_key": self.new_key}
        if self.new_name:
            kwargs["new_name"] = self.new_name
        if self.old_name:
            kwargs["old_name"] = self.old_name
        return (self.__class__.__qualname__, [], kwargs)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self._allowed(schema_editor, from_state):
            using = schema_editor.connection.alias
            self._report(rename_tool(from_state.apps, using, self.old_key, self.new_key, self.new_name))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self._allowed(schema_editor, from_state):
            using = schema_editor.connection.alias
            self._report(rename_tool(from_state.apps, using, self.new_key, self.old_key, self.old_name))

    def describe(self) -> str:
        return f"Rename tool {self.old_key!r} to {self.new_key!r}"

    @property
    def migration_name_fragment(self) -> str:
        return f"rename_tool_{self.old_key}_{self.new_key}".replace("-", "_")


class RemoveTool(ToolDataOperation):
    """Delete a tool and all its grants.

    Reversible only in part: backwards recreates the tool (with `name` and
    `description`) but without grants, which cannot be recovered from a
    migration. Restore grants from an access snapshot or a backup instead.
    """

    def __init__(self, key: str, name: str | None = None, description: str = ""):
        self.key, self.name, self.description = key, name, description

    def deconstruct(self):
        kwargs = {"key": self.key}
        if self.name:
            kwargs["name"] = self.name
        if self.description:
            kwargs["description"] = self.description
        return (self.__class__.__qualname__, [], kwargs)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self._allowed(schema_editor, from_state):
            self._report(remove_tool(from_state.apps, schema_editor.connection.alias, self.key))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self._allowed(schema_editor, from_state):
            using = schema_editor.connection.alias
            self._report(restore_tool(from_state.apps, using, self.key, self.name or self.key, self.description))

    def describe(self) -> str:
        return f"Remove tool {self.key!r} and its grants"

    @property
    def migration_name_fragment(self) -> str:
        return f"remove_tool_{self.key}".replace("-", "_")
