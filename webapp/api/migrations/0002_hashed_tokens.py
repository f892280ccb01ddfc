"""API tokens move from DRF's authtoken table (plain text) to knox's (a hash): each existing token
is hashed into knox's table, so the scripts that use it keep working, and its plain text is
deleted. The old table is read with SQL, as its app is no longer installed; a database that
never had it (a new one) has nothing to move."""

from django.db import migrations


def hash_existing_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        token = AuthToken.objects.create(digest=hash_token(key), token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH],
                                         user_id=user_id, expiry=None)
        AuthToken.objects.filter(pk=token.pk).update(created=created)  # created is auto_now_add
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0001_initial"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop),
    ]
