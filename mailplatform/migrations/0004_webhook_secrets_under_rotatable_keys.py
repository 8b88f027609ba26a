"""Webhook signing secrets move from a key of their own (derived from SECRET_KEY, not rotatable)
to the platform's rotatable ENCRYPTION_KEYS (mailplatform.crypto), like every other secret."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import migrations


def _old_fernet() -> Fernet:
    digest = hashlib.sha256(b"posthorn-secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def reencrypt(apps, schema_editor):
    from mailplatform import crypto

    WebhookEndpoint = apps.get_model("mailplatform", "WebhookEndpoint")
    old = _old_fernet()
    for endpoint in WebhookEndpoint.objects.exclude(secret_encrypted=""):
        try:
            clear = old.decrypt(endpoint.secret_encrypted.encode()).decode()
        except InvalidToken:
            continue  # unreadable before too (SECRET_KEY changed): the endpoint is re-created
        endpoint.secret_encrypted = crypto.encrypt(clear)
        endpoint.save(update_fields=["secret_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("mailplatform", "0003_webhook_cursor")]
    operations = [migrations.RunPython(reencrypt, migrations.RunPython.noop)]
