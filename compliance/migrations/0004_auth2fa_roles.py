"""The four staff roles as groups with their permissions, and their two-factor setting.

The permissions are created here first: on a fresh database Django creates them only after all
migrations (post_migrate), too late for this one.
"""

import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

ROLES = ("Agent", "Supervisor", "Compliance officer", "Administrator")
PERMISSIONS = {
    "Agent": ("chat.view_cannedresponse",),
    "Supervisor": (
        "chat.view_conversation",
        "chat.view_department",
        "chat.view_agentprofile",
        "chat.view_cannedresponse",
        "chat.add_cannedresponse",
        "chat.change_cannedresponse",
        "chat.delete_cannedresponse",
    ),
    "Compliance officer": (
        "compliance.view_auditentry",
        "compliance.view_maskingrule",
        "compliance.add_maskingrule",
        "compliance.change_maskingrule",
        "compliance.view_maskingsettings",
        "compliance.change_maskingsettings",
        "chat.view_conversation",
    ),
}


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    RoleSecurity = apps.get_model("compliance", "RoleSecurity")
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        RoleSecurity.objects.get_or_create(group=group)
        if role == "Administrator":
            group.permissions.set(Permission.objects.all())
            continue
        perms = []
        for dotted in PERMISSIONS[role]:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                perms.append(perm)
        group.permissions.set(perms)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("compliance", "0003_audit_log_append_only"),
        ("chat", "0003_workspace_tickets_surveys_invitations"),
        # So that the Administrator group gets the two-factor devices' permissions too.
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [
        migrations.CreateModel(
            name="RoleSecurity",
            fields=[
                (
                    "group",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="security",
                        serialize=False,
                        to="auth.group",
                    ),
                ),
                (
                    "require_two_factor",
                    models.BooleanField(
                        default=True,
                        help_text=(
                            "Members must give a one-time code after their password. A user is let in with the "
                            "password alone only if every role it holds has this off; superusers always need it."
                        ),
                    ),
                ),
            ],
            options={
                "verbose_name": "role security setting",
                "verbose_name_plural": "role security settings",
            },
        ),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
