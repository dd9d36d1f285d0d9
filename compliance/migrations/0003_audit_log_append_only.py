"""On PostgreSQL, a trigger refuses UPDATE, DELETE and TRUNCATE of the audit log.

A guard rail against application bugs and hurried hands, not against the table's owner (who can
disable triggers); the hash chain and `verify_audit_log` are what show tampering. TRUNCATE is let
through only when the session has set `coachline.audit_truncate` to `allow`, which compliance's
`flush` command does (the test runner empties the database with it). SQLite has no such guard.
"""

from django.db import migrations

INSTALL = """
CREATE FUNCTION compliance_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('coachline.audit_truncate', true) = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'The audit log is append-only: %% on %% is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER compliance_audit_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON compliance_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_audit_append_only();
"""

UNINSTALL = """
DROP TRIGGER IF EXISTS compliance_audit_append_only ON compliance_auditentry;
DROP FUNCTION IF EXISTS compliance_audit_append_only();
"""


# schema_editor.execute() formats the SQL with the driver, hence "%%" for plpgsql's "%".
def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_audit_log")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
