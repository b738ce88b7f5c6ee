"""`manage.py load_demo`: the demo users and grants (local and staging only)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tools.demo import load_demo_data


class Command(BaseCommand):
    help = "Create the demo users (admin, alice, bob, carol, dave, user_a) and their grants. Safe to re-run."

    def handle(self, *args, **options):
        if settings.OMNITOOL_ENV == "production":
            raise CommandError("load_demo refuses to run when OMNITOOL_ENV=production.")
        demo = load_demo_data()
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
            self.stdout.write(f"  Admin login: {demo.admin_username} / {demo.admin_password}  (http://127.0.0.1:8000/admin/)")
            self.stdout.write(f"  Users {', '.join(demo.usernames)} / {demo.user_password}")
            self.stdout.write("  Invoice Generator is granted to every active user except user_a.")
