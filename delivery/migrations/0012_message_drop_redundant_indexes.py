"""The ledger's single-column indexes on mailing_id and contact_id go: delivery_msg_progress
(mailing_id, state) and delivery_msg_contact (contact_id, id) lead with the same columns, and each
index costs every claim and every outcome a write. Only the indexes are dropped: Django's own
AlterField would also drop and re-add the mailing foreign key, re-checking the whole ledger."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "delivery_message_mailing_id_8e909d15": "mailing_id",
    "delivery_message_contact_id_2a3a0e0d": "contact_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0012_subscription_covers_status"),
        ("delivery", "0011_hold_frequency"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "delivery_message" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="contact",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="contacts.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="mailing",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="delivery.mailing",
                    ),
                ),
            ],
        ),
    ]
