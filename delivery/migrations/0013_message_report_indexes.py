"""The report reads a finished mailing's Messages from indexes: delivery_msg_progress (mailing_id,
state) becomes delivery_msg_outcome, the same keys INCLUDING bounce_kind (its counts by state and
bounce kind, index-only), and delivery_msg_not_received holds only the Messages that failed, were
skipped, wait or bounced (its "not received" list walked the primary key past every other Message).

Built CONCURRENTLY: no lock stops sending while the ledger is indexed (about a minute at ten
million rows); the old index goes only after the new one is there."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("delivery", "0012_message_drop_redundant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(fields=["mailing", "state"], include=["bounce_kind"], name="delivery_msg_outcome"),
        ),
        RemoveIndexConcurrently(model_name="message", name="delivery_msg_progress"),
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                fields=["mailing", "id"],
                condition=Q(state__in=["failed", "skipped", "deferred"]) | ~Q(bounce_kind=""),
                name="delivery_msg_not_received",
            ),
        ),
    ]
