"""What every deploy command shares: `--format`, `--noinput`, `--confirm`, the
production guard and JSON output. Like Django's own commands, subclasses
declare their flags in `add_arguments` and keep `handle` thin.
"""
import json
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from deploy.errors import first_line


class DeployCommand(BaseCommand):
    """Base for deploy commands. Set `json_output = False` to drop `--format`."""

    json_output = True
    confirmable = False  # adds --noinput and --confirm ENV
    format = "text"
    verbosity = 1

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if self.json_output:
            parser.add_argument(
                "--format",
                choices=["text", "json"],
                default="text",
                help="text for people (default); json prints one JSON document on stdout and nothing else.",
            )
        _make_usage_errors_one_line(parser, f"{prog_name} {subcommand}")
        if self.confirmable:
            parser.add_argument(
                "--noinput",
                "--no-input",
                action="store_false",
                dest="interactive",
                help="Never prompt. Destructive steps in production then also need --confirm production.",
            )
            parser.add_argument(
                "--confirm",
                metavar="ENV",
                help="The environment's name, confirming a destructive step without a prompt.",
            )
        return parser

    def execute(self, *args, **options):
        self.format = options.get("format", "text")
        self.verbosity = options.get("verbosity", 1)
        self.json_written = False
        try:
            return super().execute(*args, **options)
        except OperationalError as error:
            # The database is down or unreachable: the operator's problem, one line, no traceback.
            raise self.failed(CommandError(f"cannot use the database: {first_line(error)}")) from None
        except CommandError as error:
            raise self.failed(error)
        except BrokenPipeError:
            # Whoever read stdout stopped early (`| head`); Python's advice: silence stdout, exit 1.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)

    def failed(self, error: CommandError) -> CommandError:
        """With --format json, stdout still carries one document: the error, unless one was written."""
        if self.format == "json" and not self.json_written:
            self.write_json({"ok": False, "error": str(error)})
        return error

    @property
    def environment(self) -> str:
        return settings.OMNITOOL_ENV

    def write_json(self, document: Any) -> None:
        self.json_written = True
        self.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str))

    def say(self, message: str, level: int = 1, style=None) -> None:
        """Text for people, at `level` verbosity or more, never in JSON mode."""
        if self.format == "json" or self.verbosity < level:
            return
        self.stdout.write(style(message) if style else message)

    def confirm_destructive(self, description: str, options: dict) -> None:
        """Stop unless the operator confirmed `description`.

        Production needs the environment's name: typed at the prompt, or with
        `--noinput --confirm production`. Elsewhere a "yes" at the prompt, or --noinput.
        """
        environment = self.environment
        confirmed_by_flag = options.get("confirm") == environment
        if options.get("confirm") and not confirmed_by_flag:
            raise CommandError(
                f"--confirm {options['confirm']} does not match this environment ({environment}); nothing was changed."
            )
        if environment == "production":
            if confirmed_by_flag:
                return
            if not options.get("interactive", True) or not sys.stdin.isatty():
                raise CommandError(
                    f"{description} in production needs confirmation: pass --noinput --confirm production; "
                    "nothing was changed."
                )
            answer = input(f"{description} in PRODUCTION. Type the environment's name to continue: ")
            if answer.strip() != environment:
                raise CommandError("Confirmation did not match 'production'; nothing was changed.")
            return
        if confirmed_by_flag or not options.get("interactive", True):
            return
        if not sys.stdin.isatty():
            raise CommandError(f"{description} needs confirmation: run it in a terminal or pass --noinput.")
        answer = input(f"{description} in {environment}. Continue? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            raise CommandError("Cancelled; nothing was changed.")


def _make_usage_errors_one_line(parser, command: str) -> None:
    """A mistyped flag is a user error like any other: one line and exit 1, not
    argparse's usage block and exit 2 (which --detailed-exitcode reserves for changes)."""

    def error(message: str):
        if not parser.called_from_command_line:
            raise CommandError(f"Error: {message}")
        sys.stderr.write(f"CommandError: {message}; see '{command} --help'.\n")
        sys.exit(1)

    parser.error = error
