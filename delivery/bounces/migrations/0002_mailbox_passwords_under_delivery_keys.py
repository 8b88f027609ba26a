"""Bounce mailbox passwords move from a key of their own (derived from SECRET_KEY) to the
rotatable keys that relay passwords use (now mailplatform.crypto), so one rotation covers every
secret."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import migrations


def _old_fernet() -> Fernet:
    key = hashlib.sha256(b"posthorn-bounce-mailbox:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def reencrypt(apps, schema_editor):
    from mailplatform import crypto

    BounceMailbox = apps.get_model("bounces", "BounceMailbox")
    old = _old_fernet()
    for mailbox in BounceMailbox.objects.exclude(password_encrypted=""):
        try:
            clear = old.decrypt(mailbox.password_encrypted.encode()).decode()
        except InvalidToken:
            continue  # unreadable before too (SECRET_KEY changed): the admin re-enters it
        mailbox.password_encrypted = crypto.encrypt(clear)
        mailbox.save(update_fields=["password_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("bounces", "0001_initial")]
    operations = [migrations.RunPython(reencrypt, migrations.RunPython.noop)]
