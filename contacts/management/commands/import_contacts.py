"""python manage.py import_contacts FILE [--list NAME ...] [--mode upsert|add|unsubscribe|blocklist]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from contacts import services
from contacts.imports import ImportFileError
from contacts.models import ImportMode


class Command(BaseCommand):
    help = "Import contacts from a CSV file in this process (no worker needed); returns once committed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="CSV file with a header row and an email column")
        parser.add_argument(
            "--list",
            dest="lists",
            action="append",
            default=[],
            metavar="NAME",
            help="subscribe imported contacts to this list (created if missing); repeatable",
        )
        parser.add_argument("--mode", choices=ImportMode.values, default=ImportMode.UPSERT)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--drop-role-and-disposable",
            action="store_true",
            help="send role (info@ …) and disposable-domain addresses to the bad rows instead of importing them",
        )

    def handle(self, *args, file: str, lists: list[str], mode: str, no_progress: bool, **options) -> None:
        drop_flagged = bool(options.get("drop_role_and_disposable"))
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        mailing_lists = [services.mailing_list_get_or_create(name.strip()) for name in lists if name.strip()]
        contact_import = services.contact_import_create(
            path=str(path.resolve()),
            filename=path.name,
            mode=mode,
            list_ids=[m.pk for m in mailing_lists],
            by="manage.py import_contacts",
            drop_flagged=drop_flagged,
        )
        bar = tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc="reading",
            disable=no_progress or None,
            file=self.stderr._out,
        )
        last = {"done": 0}

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "reading":
                bar.update(done - last["done"])
                last["done"] = done
            else:
                bar.set_description(stage)

        try:
            result = services.contact_import_run(contact_import.pk, progress=progress)
        except ImportFileError as exc:
            raise CommandError(f"{file}: {exc}") from None
        finally:
            bar.close()
        self.stdout.write(
            f"{result.rows} rows: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.invalid} invalid, {result.duplicates} duplicates, "
            f"{result.protected} not resubscribed (unsubscribed, bounced, complained or blocklisted)"
        )
        if result.report_path:
            self.stdout.write(f"bad rows: {result.report_path}")
