"""`manage.py notify`: post a deploy message to the team's chat webhook.

Never fails a deploy: no webhook configured means nothing to do, and a webhook
that is down, slow or refuses the message is one warning line on stderr.
"""
from django.conf import settings

from deploy.command import DeployCommand
from deploy.notifications import (
    STATUSES,
    Notification,
    NotificationNotDelivered,
    deliver,
    webhook_from_settings,
)


class Command(DeployCommand):
    help = (
        "Post a deploy notification to DEPLOY_WEBHOOK_URL (Slack, Discord or generic JSON, "
        "per DEPLOY_WEBHOOK_FORMAT or the URL's host). Does nothing when no webhook is set; "
        "a failed delivery is a warning and still exits 0."
    )

    def add_arguments(self, parser):
        parser.add_argument("--status", required=True, choices=STATUSES, help="How the deploy went.")
        parser.add_argument("--message", required=True, help="What to tell the team, e.g. 'Deployed abc123'.")
        parser.add_argument("--url", default="", help="The deployment's address, shown as a link in the message.")

    def handle(self, *args, **options):
        notification = Notification(
            status=options["status"],
            message=options["message"],
            environment=settings.OMNITOOL_ENV,
            version=settings.RELEASE_VERSION,
            url=options["url"],
        )
        report = {"sent": False, "status": notification.status, "host": None, "webhook_format": None, "problem": None}
        try:
            webhook = webhook_from_settings()
            if webhook is None:
                self.say("DEPLOY_WEBHOOK_URL is not set; no notification sent.", level=2)
            else:
                report.update(host=webhook.host, webhook_format=webhook.format)
                http_status = deliver(notification, webhook)
                report.update(sent=True, http_status=http_status)
                self.say(f"Notified {webhook.host} ({webhook.format}): {notification.status}.")
        except NotificationNotDelivered as problem:
            report["problem"] = str(problem)
            where = f" to {report['host']} ({report['webhook_format']})" if report["host"] else ""
            if self.verbosity >= 1:
                warning = f"Warning: deploy notification not delivered{where}: {problem}; the deploy goes on."
                self.stderr.write(self.style.WARNING(warning))
        if self.format == "json":
            self.write_json(report)
