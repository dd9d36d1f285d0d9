"""Demo data for `make run`: a supervisor, two agents, two departments, canned answers. Idempotent."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.models import AgentProfile, CannedResponse, Department

DEMO_PASSWORD = "coachline-demo"

CANNED = [
    ("greeting", "Greeting", "Hello {visitor_name}, my name is {agent_name}. How can I help you today?"),
    ("wait", "One moment", "Thank you for your patience, I'm looking into this for you now."),
    ("understand", "Empathy: understand", "I understand how frustrating this must be, and I'm here to help."),
    ("sorry", "Empathy: sorry", "I'm sorry you've had this experience. Let's get it sorted out together."),
    ("thanks", "Closing", "Thank you for contacting us, {visitor_name}. Is there anything else I can help with?"),
]


class Command(BaseCommand):
    help = "Create demo users, departments and canned answers (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        support, _ = Department.objects.get_or_create(slug="support", defaults={"name": "Patient support"})
        billing, _ = Department.objects.get_or_create(slug="billing", defaults={"name": "Billing"})

        def user(username: str, *, first: str, last: str, superuser: bool = False):
            obj, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last, "is_staff": True,
                                             "is_superuser": superuser, "email": f"{username}@example.com"}
            )
            if created:
                obj.set_password(DEMO_PASSWORD)
                obj.save(update_fields=["password"])
            return obj

        user("supervisor", first="Sam", last="Supervisor", superuser=True)
        for username, name, departments in (
            ("alice", "Alice Agent", [support, billing]),
            ("bob", "Bob Agent", [support]),
        ):
            first, last = name.split()
            agent_user = user(username, first=first, last=last)
            profile, _ = AgentProfile.objects.get_or_create(user=agent_user, defaults={"display_name": name})
            profile.departments.add(*departments)
        for shortcut, title, body in CANNED:
            CannedResponse.objects.get_or_create(
                shortcut=shortcut, department=None, owner=None, defaults={"title": title, "body": body}
            )
        # Reporting's history (a few weeks of chats) so the dashboard's charts are not empty.
        call_command("seed_history", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Logins (password '{DEMO_PASSWORD}'): supervisor (back office), alice, bob (agents)")
