"""Back up the database and the media files into one tar with a manifest (mailplatform/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailplatform.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Write posthorn-backup-<time>.tar (pg_dump of the database, the media files, a manifest with "
        "versions and checksums) into --output-dir. Redis is not included: what it holds may be lost."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output-dir", default=".", help="where the archive goes (default: here)")

    def handle(self, *args, output_dir=".", **options):
        try:
            result = backup(Path(output_dir))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{result.path} ({result.bytes} bytes, {result.media_files} media files)")
