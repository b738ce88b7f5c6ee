"""One lock for everything that rewrites grants (imports, access rollbacks), so
that two of them never interleave.

PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback.
SQLite: the settings open every transaction with BEGIN IMMEDIATE, so the
transaction already holds SQLite's single writer lock.
"""
import zlib

from django.db import DEFAULT_DB_ALIAS, connections

DEPLOY_LOCK_NAME = "omnitool.deploy.access"


def advisory_lock_id(name: str) -> int:
    """A stable signed 64-bit id for a lock name (pg_advisory_xact_lock takes a bigint)."""
    return zlib.crc32(name.encode()) - 2**31


def acquire_deploy_lock(using: str = DEFAULT_DB_ALIAS, name: str = DEPLOY_LOCK_NAME) -> None:
    """Block until this transaction holds the deploy lock. Call inside transaction.atomic()."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("acquire_deploy_lock() must be called inside transaction.atomic().")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_lock_id(name)])
