"""Two of the ledger's indexes go, and the relay foreign key's database constraint with them: a claim
rewrites each Message it takes and an outcome rewrites it again (neither update can be HOT: `state`
is in most indexes), and each rewrite adds an entry to every index whose predicate the new row meets.

- delivery_msg_lease (lease_expires_at WHERE state = 'sending'): the watchdog finds expired leases
  per Mailing through delivery_msg_outcome (mailing_id, state) instead; one entry less a claim;
- the index on relay_id: nothing reads the ledger by relay but deleting a relay (rare: one scan);
  one entry less a claim and an outcome;
- the constraint: PostgreSQL checked it (a FOR KEY SHARE of the relay's row) for every Message a
  claim gave a relay. A deleted relay's Messages are still set to NULL by Django (SET_NULL).

Dropped CONCURRENTLY, so no lock waits on sending for the indexes; the constraint's drop takes the
table's lock for a moment."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "delivery_msg_lease": 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "delivery_msg_lease" ON "delivery_message" '
    "(\"lease_expires_at\") WHERE \"state\" = 'sending'",
    "delivery_message_relay_id_5bd4bbe8": 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "delivery_message_relay_id_5bd4bbe8" '
    'ON "delivery_message" ("relay_id")',
}
CONSTRAINT = "delivery_message_relay_id_5bd4bbe8_fk_delivery_relay_id"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("delivery", "0013_message_report_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'ALTER TABLE "delivery_message" DROP CONSTRAINT IF EXISTS "{CONSTRAINT}"',
                    reverse_sql=f'ALTER TABLE "delivery_message" ADD CONSTRAINT "{CONSTRAINT}" FOREIGN KEY '
                    '("relay_id") REFERENCES "delivery_relay" ("id") DEFERRABLE INITIALLY DEFERRED',
                ),
                *(
                    migrations.RunSQL(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"', reverse_sql=create)
                    for name, create in INDEXES.items()
                ),
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="message", name="delivery_msg_lease"),
                migrations.AlterField(
                    model_name="message",
                    name="relay",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="delivery.relay",
                    ),
                ),
            ],
        ),
    ]
