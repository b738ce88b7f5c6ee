"""The history of tool keys, as the migrations record it.

Every `RenameTool` and `RemoveTool` in the migration graph, in the order
`migrate` applies them. `carry_keys_forward` answers "if a database held
these keys, which keys would it hold after migrate?", which is how a test
and `verify_deploy` catch a key renamed in the catalogue with no migration.
"""
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.migrations.loader import MigrationLoader

from tools.operations import RemoveTool, RenameTool


@dataclass(frozen=True)
class KeyChange:
    migration: str  # "app_label.migration_name"
    old_key: str
    new_key: str | None  # None: the tool was removed


def tool_key_changes() -> list[KeyChange]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    targets = loader.graph.leaf_nodes()
    changes: list[KeyChange] = []
    for node in _forwards_plan(loader, targets):
        migration = loader.graph.nodes[node]
        for operation in migration.operations:
            if isinstance(operation, RenameTool):
                changes.append(KeyChange(f"{node[0]}.{node[1]}", operation.old_key, operation.new_key))
            elif isinstance(operation, RemoveTool):
                changes.append(KeyChange(f"{node[0]}.{node[1]}", operation.key, None))
    return changes


def _forwards_plan(loader: MigrationLoader, targets) -> list[tuple[str, str]]:
    plan: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for target in targets:
        for node in loader.graph.forwards_plan(target):
            if node not in seen:
                seen.add(node)
                plan.append(node)
    return plan


def carry_keys_forward(keys: Iterable[str], changes: list[KeyChange] | None = None) -> set[str]:
    """The keys a database holding `keys` would hold after every key change ran."""
    current = set(keys)
    for change in tool_key_changes() if changes is None else changes:
        if change.old_key in current:
            current.discard(change.old_key)
            if change.new_key is not None:
                current.add(change.new_key)
    return current
