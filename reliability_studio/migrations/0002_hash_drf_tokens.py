"""Move DRF's clear-text tokens (rest_framework.authtoken) into ApiToken, hashed, and delete them.

Existing clients keep working: the same key now matches its digest. Raw SQL, so that this runs
whether or not rest_framework.authtoken is still installed (its table may outlive the app).
"""
import hashlib

from django.db import migrations

LEGACY_TABLE = "authtoken_token"


def hash_legacy_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("reliability_studio", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            token = ApiToken.objects.create(user_id=user_id, name="migrated DRF token", prefix=key[:8],
                                            digest=hashlib.sha256(key.encode()).hexdigest())
            ApiToken.objects.filter(pk=token.pk).update(created_at=created)
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")


class Migration(migrations.Migration):

    dependencies = [("reliability_studio", "0001_initial")]

    # Irreversible by nature (the keys are gone); going back leaves the hashed tokens in place.
    operations = [migrations.RunPython(hash_legacy_tokens, migrations.RunPython.noop)]
