"""What every deploy command shares: `--format`, `--noinput`, `--confirm`, the
production guard and JSON output. Like Django's own commands, subclasses
declare their flags in `add_arguments` and keep `handle` thin.
"""
import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


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
        return super().execute(*args, **options)

    @property
    def environment(self) -> str:
        return settings.OMNITOOL_ENV

    def write_json(self, document: Any) -> None:
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

