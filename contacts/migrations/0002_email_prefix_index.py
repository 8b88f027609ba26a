from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("contacts", "0001_initial")]

    operations = [
        migrations.RunSQL(
            # Prefix search on the lower-cased address under any database collation.
            "CREATE INDEX contacts_email_prefix_idx ON contacts_contact (lower(email) text_pattern_ops)",
            "DROP INDEX contacts_email_prefix_idx",
        )
    ]
