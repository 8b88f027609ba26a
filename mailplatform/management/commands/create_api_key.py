"""Create an API key for a user from the shell (deploy scripts, CI); the key is printed once."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mailplatform.models import User
from mailplatform.scopes import SCOPES
from mailplatform.services import ApiKeyError, api_key_create


class Command(BaseCommand):
    help = "Create an API key owned by USER with the given scopes; prints the key (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="username of the key's owner (an admin or a developer)")
        parser.add_argument("--name", required=True, help="what uses the key")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            default=[],
            help=f"repeatable; one of {', '.join(SCOPES)}",
        )
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(
        self, *args, user: str, name: str, scopes: list[str], expires_in_days: int | None, **options
    ) -> None:
        owner = User.objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user named {user!r}")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be 1 or more")
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days) if expires_in_days else None
        try:
            key, full_key = api_key_create(user=owner, name=name, scopes=scopes, expires_at=expires_at)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Created {key} with {', '.join(key.scopes)}. The key, shown only now:")
        self.stdout.write(full_key)
