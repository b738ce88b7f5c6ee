"""One lock for everything that rewrites grants in bulk (imports, access
rollbacks, the admin's bulk grant), so that two of them never interleave.

PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback.
SQLite: the settings open every transaction with BEGIN IMMEDIATE, so the
transaction already holds SQLite's single writer lock.
"""
import zlib

from django.db import DEFAULT_DB_ALIAS, connections

GRANTS_LOCK_NAME = "omnitool.deploy.access"  # the name is the lock's identity: keep it


def advisory_lock_id(name: str) -> int:
    """A stable signed 64-bit id for a lock name (pg_advisory_xact_lock takes a bigint)."""
    return zlib.crc32(name.encode()) - 2**31


def acquire_grants_lock(using: str = DEFAULT_DB_ALIAS, name: str = GRANTS_LOCK_NAME) -> None:
    """Block until this transaction holds the grants lock. Call inside transaction.atomic()."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("acquire_grants_lock() must be called inside transaction.atomic().")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_lock_id(name)])
