from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0003_ledger_search_index"),
    ]

    operations = [
        # A constant default: PostgreSQL adds the column without rewriting the ledger.
        migrations.AddField(
            model_name="message",
            name="hold_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Not held"),
                    ("relay", "Deferred by the relay"),
                    ("window", "Outside the sending window"),
                    ("throttled", "Receiving domain throttled"),
                    ("warmup", "Warm-up cap reached"),
                ],
                default="",
                max_length=10,
            ),
        ),
        # Every Message deferred so far was deferred by its relay (the due index finds them).
        migrations.RunSQL(
            "UPDATE delivery_message SET hold_reason = 'relay' WHERE state = 'deferred'",
            migrations.RunSQL.noop,
        ),
    ]
