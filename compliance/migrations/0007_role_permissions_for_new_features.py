"""Give the roles the permissions of the models added after the roles were created (0004).

Administrators already hold every permission (compliance.backends.AdministratorBackend). The back
office is the supervisor's tool: without these, a supervisor by role (not a superuser) could not
open the review queue, the sampling rules, tickets or the reporting schedules at all.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = {
    "Supervisor": (
        "chat.view_ticket",
        "chat.change_ticket",
        "chat.view_surveyresponse",
        "chat.view_proactiveinvitation",
        "chat.view_invitationrule",
        "chat.add_invitationrule",
        "chat.change_invitationrule",
        "chat.delete_invitationrule",
        "chat.view_surveyquestion",
        "chat.add_surveyquestion",
        "chat.change_surveyquestion",
        "chat.delete_surveyquestion",
        "chat.view_widgetdepartmentsettings",
        "chat.change_widgetdepartmentsettings",
        "coaching.view_review",
        "coaching.change_review",
        "coaching.view_samplingrule",
        "coaching.add_samplingrule",
        "coaching.change_samplingrule",
        "coaching.delete_samplingrule",
        "coaching.view_scorecard",
        "coaching.add_scorecard",
        "coaching.change_scorecard",
        "coaching.view_scenario",
        "coaching.add_scenario",
        "coaching.change_scenario",
        "coaching.delete_scenario",
        "reporting.view_reportingsettings",
        "reporting.view_metricreport",
        "reporting.add_metricreport",
        "reporting.change_metricreport",
        "reporting.delete_metricreport",
    ),
    "Compliance officer": (
        "compliance.view_conversationarchive",
        "compliance.change_conversationarchive",  # legal holds
        "compliance.view_retentionpolicy",
        "compliance.add_retentionpolicy",
        "compliance.change_retentionpolicy",
        "compliance.view_remaskjob",
        "compliance.view_contentsafetysettings",
        "compliance.change_contentsafetysettings",
    ),
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, dotted in PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in dotted:
            app_label, codename = name.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0006_merge_archive"),
        ("chat", "0005_merge_workspace_widget"),
        ("coaching", "0001_initial"),
        ("reporting", "0002_metric_reports"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
