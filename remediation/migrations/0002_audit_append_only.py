"""The audit log is append-only in the database: a trigger refuses every UPDATE and DELETE of
remediation_auditrecord, whoever sends it (the API, the admin, raw SQL through the ORM, psql).

TRUNCATE is not blocked: Django's test runner empties tables with it, and it needs the table
owner's privilege — production should run the app as a role that does not own its tables.
"""
from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION remediation_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'remediation audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER remediation_audit_append_only
    BEFORE UPDATE OR DELETE ON remediation_auditrecord
    FOR EACH ROW EXECUTE FUNCTION remediation_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS remediation_audit_append_only ON remediation_auditrecord;
DROP FUNCTION IF EXISTS remediation_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("remediation", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
