"""Restore a backup (manage.py backup) into an empty database and MEDIA_ROOT."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailplatform.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore ARCHIVE into the configured database, which must be empty, and MEDIA_ROOT. Checks the "
        "manifest, checksums and migrations first; restores in one transaction. Then run manage.py migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive")

    def handle(self, *args, archive, **options):
        try:
            manifest = restore(Path(archive))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"restored the backup of {manifest['created_at']} (Posthorn {manifest['posthorn_version']}); "
            "now run: python manage.py migrate"
        )
