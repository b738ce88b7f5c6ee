"""`manage.py export_access [--output PATH|-] [--env NAME]`: write this database's access file.

The bytes are deterministic (deploy.access_file.iter_access_document): the
same grants always export the same file, so it diffs cleanly in review.
"""
import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from deploy.access_file import ExportSummary, grants_outside_catalogue, iter_access_document
from deploy.command import DeployCommand
from deploy.progress import progress_for


class Command(DeployCommand):
    help = (
        "Export every catalogue tool and its grants as the access file (tools by key, users by username and "
        "email; sorted, byte-for-byte deterministic). Commit it, and the release phase imports it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            "-o",
            metavar="PATH",
            help="Where to write; '-' writes the file to stdout. Default: settings.ACCESS_FILE (fixtures/access.json).",
        )
        parser.add_argument(
            "--env",
            metavar="NAME",
            choices=settings.ENVIRONMENTS,
            help="The environment named in the file (default: OMNITOOL_ENV).",
        )

    def handle(self, *args, **options):
        output = options["output"] or str(settings.ACCESS_FILE)
        summary = ExportSummary(environment="")
        chunks = iter_access_document(environment=options["env"], summary=summary)
        if output == "-":
            _write_to_stream(self.stdout._out, chunks)
            self.warn_about_left_out_grants(grants_outside_catalogue())
            return
        progress = progress_for(self, "Exporting grants")
        try:
            sha256 = _write_atomically(Path(output), chunks, progress and (lambda: progress(summary.grant_count)))
        except OSError as error:
            raise CommandError(f"{output}: cannot write the access file ({error.strerror}); nothing was written.") from None
        finally:
            if progress:
                progress.finish()
        left_out = grants_outside_catalogue()
        self.warn_about_left_out_grants(left_out)
        if self.format == "json":
            self.write_json(
                {
                    "left_out": left_out,
                    "output": output,
                    "environment": summary.environment,
                    "tools": summary.tool_count,
                    "grants": summary.grant_count,
                    "bytes": summary.byte_count,
                    "sha256": sha256,
                }
            )
            return
        self.say(
            f"Exported {summary.tool_count} tools and {summary.grant_count:,} grants "
            f"({summary.byte_count:,} bytes) to {output}.",
            style=self.style.SUCCESS,
        )

    def warn_about_left_out_grants(self, left_out: dict[str, int]) -> None:
        """Grants on tools the catalogue lacks are not exported; say so rather than lose them quietly."""
        if left_out and self.verbosity >= 1:
            tools = ", ".join(f"{key} ({count})" for key, count in left_out.items())
            total = sum(left_out.values())
            self.stderr.write(
                f"Left out {total} grant{'' if total == 1 else 's'} on tools not in the catalogue: {tools}. "
                "A RenameTool or RemoveTool migration resolves them; verify_deploy lists them.",
                style_func=self.style.WARNING,
            )


def _write_to_stream(stream, chunks) -> None:
    """The file's bytes on a text stream: straight to its binary buffer when it has one (a real stdout)."""
    stream.flush()
    binary = getattr(stream, "buffer", None)
    for chunk in chunks:
        if binary is not None:
            binary.write(chunk)
        else:
            stream.write(chunk.decode("utf-8"))
    (binary or stream).flush()


def _write_atomically(path: Path, chunks, on_chunk=None) -> str:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CommandError(f"{path}: the directory {directory} does not exist; nothing was written.")
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                digest.update(chunk)
                if on_chunk:
                    on_chunk()
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest.hexdigest()
