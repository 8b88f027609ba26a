"""Message.bounce_kind, filled for the Messages that bounced before it existed.

The kind comes from the one classifier (delivery.bounces.classifier): a classified bounce event's
own kind, else the SMTP refusal the engine recorded, classified now. Only bounced events are read
(the report index), so this is proportional to the bounces, not to the ledger.
"""

from django.db import migrations, models

BOUNCE_KINDS = ("hard", "soft", "block", "unknown")


def fill(apps, schema_editor):
    from delivery.bounces.classifier import classify_refusal

    message_event = apps.get_model("delivery", "MessageEvent")
    message = apps.get_model("delivery", "Message")
    chosen: dict[int, tuple[bool, object, str]] = {}
    rows = message_event.objects.filter(kind="bounced").values_list("message_id", "at", "data")
    for message_id, at, data in rows.iterator(chunk_size=2000):
        data = data or {}
        classified = data.get("kind") in BOUNCE_KINDS
        if classified:
            kind = data["kind"]
        else:
            code = int(data.get("code") or 0)
            kind = classify_refusal("", code, str(data.get("reply") or ""), str(data.get("stage") or "rcpt")).kind
            kind = kind if kind in BOUNCE_KINDS else "unknown"
        # As the reports did: a classified event wins over a raw refusal, then the latest.
        rank = (classified, at)
        if message_id not in chosen or rank > chosen[message_id][:2]:
            chosen[message_id] = (classified, at, kind)
    by_kind: dict[str, list[int]] = {}
    for message_id, (_, _, kind) in chosen.items():
        by_kind.setdefault(kind, []).append(message_id)
    for kind, ids in by_kind.items():
        for start in range(0, len(ids), 5000):
            message.objects.filter(pk__in=ids[start : start + 5000]).update(bounce_kind=kind)


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0004_message_hold_reason"),
    ]

    operations = [
        # A constant default: PostgreSQL adds the column without rewriting the ledger.
        migrations.AddField(
            model_name="message",
            name="bounce_kind",
            field=models.CharField(blank=True, default="", max_length=8),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
