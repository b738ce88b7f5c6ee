"""Access snapshots: the whole grant state, kept in the database so that an
import can be undone (`rollback --access-only`).

A snapshot is the access file of every tool in the database (not only the
catalogue's), gzip-compressed, with its SHA-256 and counts. Imports take one
inside their transaction before their first write; retention keeps the newest
settings.ACCESS_SNAPSHOT_KEEP.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction

from deploy.access_file import AccessFile, AccessFileError, ExportSummary, iter_access_document, parse_access_file
from deploy.models import AccessSnapshot

# The access file is so repetitive that level 1 already compresses it ~18x
# (1M grants: 99 MB -> 5.5 MB), in under half the time of level 6.
SNAPSHOT_COMPRESS_LEVEL = 1


def take_access_snapshot(reason: str, *, using: str = DEFAULT_DB_ALIAS) -> AccessSnapshot:
    """Store the grants of every tool as a snapshot; keep the newest ACCESS_SNAPSHOT_KEEP."""
    summary = ExportSummary(environment=settings.OMNITOOL_ENV)
    digest = hashlib.sha256()
    # wbits=31: gzip framing, so the stored bytes are a plain .gz file; no mtime, so equal states compress equally.
    compressor = zlib.compressobj(SNAPSHOT_COMPRESS_LEVEL, zlib.DEFLATED, 31)
    compressed = []
    for chunk in iter_access_document(using=using, all_database_tools=True, summary=summary):
        digest.update(chunk)
        compressed.append(compressor.compress(chunk))
    compressed.append(compressor.flush())
    with transaction.atomic(using=using):
        snapshot = AccessSnapshot.objects.using(using).create(
            environment=settings.OMNITOOL_ENV,
            reason=reason[:200],
            tool_count=summary.tool_count,
            grant_count=summary.grant_count,
            document=b"".join(compressed),
            sha256=digest.hexdigest(),
        )
        prune_access_snapshots(using=using)
    return snapshot


def prune_access_snapshots(*, keep: int | None = None, using: str = DEFAULT_DB_ALIAS) -> int:
    """Delete all but the newest `keep` (default ACCESS_SNAPSHOT_KEEP) snapshots; return how many went."""
    keep = settings.ACCESS_SNAPSHOT_KEEP if keep is None else keep
    snapshots = AccessSnapshot.objects.using(using)
    stale = list(snapshots.order_by("-created_at", "-pk").values_list("pk", flat=True)[max(keep, 1) :])
    if not stale:
        return 0
    return snapshots.filter(pk__in=stale).delete()[0]


def snapshot_access_file(snapshot: AccessSnapshot) -> AccessFile:
    """The snapshot's grants as a validated AccessFile. A damaged snapshot raises AccessFileError."""
    source = f"access snapshot #{snapshot.pk}"
    try:
        data = gzip.decompress(bytes(snapshot.document))
    except (OSError, EOFError, zlib.error) as error:
        raise AccessFileError(f"{source}: the stored document is not valid gzip ({error}).") from None
    if hashlib.sha256(data).hexdigest() != snapshot.sha256:
        raise AccessFileError(f"{source}: checksum mismatch; the stored document is damaged.")
    return parse_access_file(data, source=source, max_bytes=None)


def restore_access_snapshot(snapshot: AccessSnapshot, *, using: str = DEFAULT_DB_ALIAS):
    """Make the grants exactly the snapshot's, on every tool, in one transaction under the grants lock.

    Grants on tools created since the snapshot are removed; users deleted since
    cannot be restored and are reported as unmatched in the returned plan. A
    fresh snapshot of the current state is stored first when anything changes.
    Returns the AccessPlan that was applied.
    """
    from deploy.access import MIRROR, apply_plan, build_plan

    access_file = snapshot_access_file(snapshot)
    plan = build_plan(access_file, mode=MIRROR, using=using, all_tools=True)
    result = apply_plan(plan, using=using, snapshot_reason=f"before restoring access snapshot #{snapshot.pk}")
    return result.plan
