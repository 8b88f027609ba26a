from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("delivery", "0002_message_contact_no_constraint")]

    operations = [
        migrations.RemoveIndex(model_name="message", name="delivery_msg_email"),
        migrations.RunSQL(
            # The ledger search matches lower(email), exactly or by prefix, under any collation.
            "CREATE INDEX delivery_msg_email_lower ON delivery_message (lower(email) text_pattern_ops)",
            "DROP INDEX delivery_msg_email_lower",
        ),
    ]
