"""The promotion machinery: access file export/import, checks, backups,
rollback and release. Commands are thin; the work is in this package's modules."""
