"""Make the database's tools equal the catalogue declared in code.

`diff_catalogue` compares (no writes); `apply_catalogue_diff` creates missing
tools and updates changed names and descriptions. Nothing is ever deleted: a
tool the catalogue lacks stays until a `RemoveTool` or `RenameTool` data
migration deals with it, and `verify_deploy` / `sync_tools --check` report it.
"""
from dataclasses import dataclass, field

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from tools import catalogue as catalogue_module
from tools.catalogue import CatalogueTool
from tools.models import Tool


class CatalogueConflict(Exception):
    """The catalogue cannot be applied as it stands (a name held by another tool)."""


@dataclass(frozen=True)
class ToolUpdate:
    key: str
    changes: dict[str, tuple[str, str]]  # field -> (database value, catalogue value)


@dataclass
class CatalogueDiff:
    """How the database's tools differ from the catalogue."""

    to_create: list[CatalogueTool] = field(default_factory=list)
    to_update: list[ToolUpdate] = field(default_factory=list)
    not_in_catalogue: list[Tool] = field(default_factory=list)

    @property
    def needs_sync(self) -> bool:
        return bool(self.to_create or self.to_update)

    @property
    def in_sync(self) -> bool:
        return not (self.needs_sync or self.not_in_catalogue)

    def lines(self) -> list[str]:
        """One line a difference, for people."""
        lines = [f"create {tool.key} ({tool.name})" for tool in self.to_create]
        for update in self.to_update:
            for field_name, (old, new) in update.changes.items():
                lines.append(f"update {update.key}: {field_name} {old!r} -> {new!r}")
        lines += [
            f"not in catalogue: {tool.key} ({tool.name}); rename or remove it with a data migration"
            for tool in self.not_in_catalogue
        ]
        return lines


def diff_catalogue(
    catalogue: tuple[CatalogueTool, ...] | None = None, using: str = DEFAULT_DB_ALIAS
) -> CatalogueDiff:
    catalogue = catalogue_module.CATALOGUE if catalogue is None else catalogue
    existing = {tool.key: tool for tool in Tool.objects.using(using).order_by("key")}
    diff = CatalogueDiff()
    declared_keys = set()
    for declared in catalogue:
        declared_keys.add(declared.key)
        tool = existing.get(declared.key)
        if tool is None:
            diff.to_create.append(declared)
            continue
        changes = {
            field_name: (getattr(tool, field_name), getattr(declared, field_name))
            for field_name in ("name", "description")
            if getattr(tool, field_name) != getattr(declared, field_name)
        }
        if changes:
            diff.to_update.append(ToolUpdate(declared.key, changes))
    diff.not_in_catalogue = [tool for key, tool in existing.items() if key not in declared_keys]
    return diff


def apply_catalogue_diff(diff: CatalogueDiff, using: str = DEFAULT_DB_ALIAS) -> None:
    names_in_use = dict(Tool.objects.using(using).values_list("name", "key"))
    for declared in diff.to_create:
        _check_name_is_free(declared.name, declared.key, names_in_use)
    for update in diff.to_update:
        if "name" in update.changes:
            _check_name_is_free(update.changes["name"][1], update.key, names_in_use)
    with transaction.atomic(using=using):
        Tool.objects.using(using).bulk_create(
            [Tool(key=tool.key, name=tool.name, description=tool.description) for tool in diff.to_create]
        )
        for update in diff.to_update:
            Tool.objects.using(using).filter(key=update.key).update(
                **{field_name: new for field_name, (_, new) in update.changes.items()}
            )


def _check_name_is_free(name: str, key: str, names_in_use: dict[str, str]) -> None:
    holder = names_in_use.get(name)
    if holder is not None and holder != key:
        raise CatalogueConflict(
            f"catalogue tool {key!r} wants the name {name!r}, which tool {holder!r} holds in the database; "
            f"rename or remove {holder!r} with a data migration (tools.operations)"
        )


def sync_catalogue(using: str = DEFAULT_DB_ALIAS) -> CatalogueDiff:
    """Create and update tools so that the database matches the catalogue; return what differed."""
    diff = diff_catalogue(using=using)
    if diff.needs_sync:
        apply_catalogue_diff(diff, using=using)
    return diff


def tools_app_fully_migrated(using: str = DEFAULT_DB_ALIAS) -> bool:
    executor = MigrationExecutor(connections[using])
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "tools"]
    return not executor.migration_plan(targets)


def sync_catalogue_after_migrate(sender, verbosity: int = 1, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate receiver: sync once the tools app's migrations have all run.

    Skipped while tools is migrated to an older state (a backward migrate): the
    catalogue describes the newest schema and data migrations only.
    """
    if not tools_app_fully_migrated(using):
        if verbosity >= 1:
            print("  Catalogue sync skipped: the tools app is not fully migrated.")
        return
    try:
        diff = sync_catalogue(using=using)
    except CatalogueConflict as error:
        raise CommandError(f"Catalogue sync failed: {error}") from None
    if verbosity >= 1 and diff.needs_sync:
        print(f"  Catalogue synced: {len(diff.to_create)} created, {len(diff.to_update)} updated.")
    if verbosity >= 2:
        for line in diff.lines():
            print(f"    {line}")
