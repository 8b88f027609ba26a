"""python manage.py sunset --months 6 --after-mailing ID [--after-mailing ID ...] [--list NAME ...]
[--grace-days 7] [--dry-run] | python manage.py sunset --restore"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from contacts import services
from contacts.models import MailingList
from mailplatform.errors import PlatformError


class Command(BaseCommand):
    help = (
        "Sunset policy: contacts with no human open or click in N months, who had a re-engagement "
        "mailing and did not open it, leave the active audience (their subscriptions end, source "
        "'sunset'); --restore undoes it. Audited."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--after-mailing", dest="mailings", type=int, action="append", default=[])
        parser.add_argument("--list", dest="lists", action="append", default=[], metavar="NAME")
        parser.add_argument("--grace-days", type=int, default=7)
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--restore", action="store_true", help="bring back every sunset subscription")

    def handle(self, *args, months, mailings, lists, grace_days, dry_run, restore, **options) -> None:
        if restore:
            self.stdout.write(f"restored {services.sunset_restore(by='manage.py sunset')} subscription(s)")
            return
        list_ids = []
        for name in lists:
            found = MailingList.objects.filter(name=name).first()
            if found is None:
                raise CommandError(f"no list named {name!r}")
            list_ids.append(found.pk)
        try:
            count = services.sunset_run(
                months=months,
                after_mailing_ids=mailings,
                grace_days=grace_days,
                list_ids=list_ids or None,
                by="manage.py sunset",
                dry_run=dry_run,
            )
        except PlatformError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{'would sunset' if dry_run else 'sunset'} {count} contact(s)")
