"""Demo data for `make run`: staff of every role with demo backup codes, two departments, canned answers.

Idempotent; each run prints new backup codes (the demo logins' second factor)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.models import AgentProfile, CannedResponse, Department
from compliance import roles

DEMO_PASSWORD = "coachline-demo"

CANNED = [
    ("greeting", "Greeting", "Hello {visitor_name}, my name is {agent_name}. How can I help you today?"),
    ("wait", "One moment", "Thank you for your patience, I'm looking into this for you now."),
    ("understand", "Empathy: understand", "I understand how frustrating this must be, and I'm here to help."),
    ("sorry", "Empathy: sorry", "I'm sorry you've had this experience. Let's get it sorted out together."),
    ("thanks", "Closing", "Thank you for contacting us, {visitor_name}. Is there anything else I can help with?"),
    ("hear", "Empathy: I hear you", "I hear you, {visitor_first_name}. That sounds really stressful."),
    ("right", "Empathy: you're right to ask", "You're right to ask about this, and I'm glad you reached out."),
    ("ownit", "Empathy: taking ownership", "I'll take care of this personally and keep you updated until it's resolved."),
    ("appreciate", "Empathy: appreciate patience", "I really appreciate your patience while I look into this."),
]
# Department sets: shown only to agents of that department (slug, shortcut, title, body).
DEPARTMENT_CANNED = [
    ("billing", "refundtime", "Refund timing", "Refunds reach your account within 5 working days."),
    ("support", "reschedule", "Reschedule", "I can move your appointment for you, {visitor_first_name}. Which day suits you?"),
]


DEMO_DEVICE = "Demo backup codes"


def demo_backup_codes(user, count: int = 5) -> list[str]:
    """Fresh single-use codes on a demo-only static device, so `make run` needs no phone."""
    import secrets

    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device, _ = StaticDevice.objects.get_or_create(user=user, name=DEMO_DEVICE, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [secrets.token_hex(3) for _ in range(count)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


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

        supervisor = user("supervisor", first="Sam", last="Supervisor")
        if supervisor.is_superuser:  # demo databases from before the roles existed
            supervisor.is_superuser = False
            supervisor.save(update_fields=["is_superuser"])
        profile, _ = AgentProfile.objects.get_or_create(user=supervisor, defaults={"display_name": "Sam Supervisor"})
        profile.departments.add(support, billing)  # the departments the supervisor oversees
        staff = {
            "supervisor": roles.SUPERVISOR,
            "compliance": roles.COMPLIANCE_OFFICER,
            "admin": roles.ADMINISTRATOR,
        }
        user("compliance", first="Cora", last="Compliance")
        user("admin", first="Ada", last="Admin", superuser=True)
        for username, name, departments in (
            ("alice", "Alice Agent", [support, billing]),
            ("bob", "Bob Agent", [support]),
        ):
            first, last = name.split()
            agent_user = user(username, first=first, last=last)
            profile, _ = AgentProfile.objects.get_or_create(user=agent_user, defaults={"display_name": name})
            profile.departments.add(*departments)
            staff[username] = roles.AGENT
        codes = {}
        for username, role in staff.items():
            demo_user = User.objects.get(username=username)
            demo_user.groups.add(Group.objects.get_or_create(name=role)[0])
            codes[username] = demo_backup_codes(demo_user)
        for shortcut, title, body in CANNED:
            CannedResponse.objects.get_or_create(
                shortcut=shortcut, department=None, owner=None, defaults={"title": title, "body": body}
            )
        for slug, shortcut, title, body in DEPARTMENT_CANNED:
            CannedResponse.objects.get_or_create(
                shortcut=shortcut, department=Department.objects.get(slug=slug), owner=None,
                defaults={"title": title, "body": body},
            )
        from chat.widget_demo_data import seed_widget_demo

        seed_widget_demo(support=support)
        # By name, not by import: chat imports no other app (coaching seeds its own demo data).
        from django.apps import apps

        if apps.is_installed("coaching"):
            call_command("seed_coaching_demo", stdout=self.stdout)
        # Reporting's history (a few weeks of chats) so the dashboard's charts are not empty.
        call_command("seed_history", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(
            f"  Logins (password '{DEMO_PASSWORD}'): alice, bob (agents), supervisor, compliance, admin"
        )
        self.stdout.write("  Two-factor: after the password, enter one of the user's demo backup codes")
        self.stdout.write("  (each works once; re-run seed_demo for new ones):")
        for username, user_codes in codes.items():
            self.stdout.write(f"    {username:<11} {' '.join(user_codes)}")
