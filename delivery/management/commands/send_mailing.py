"""Send a planned Mailing in this process, with a progress bar; no worker needed."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from delivery import engine, selectors
from delivery.models import Mailing


class Command(BaseCommand):
    help = "Send a Mailing in this process until nothing is left to claim (deferred messages wait for their retry)."

    def add_arguments(self, parser):
        parser.add_argument("mailing_id", type=int)

    def handle(self, *args, mailing_id: int, **options):
        mailing = Mailing.objects.filter(pk=mailing_id).first()
        if mailing is None:
            raise CommandError(f"mailing {mailing_id} does not exist")
        if mailing.state not in (Mailing.State.SENDING, Mailing.State.STANDING):
            raise CommandError(f"mailing {mailing_id} is {mailing.state}: start or resume it first")
        progress = selectors.mailing_progress(mailing_id)
        with tqdm(total=progress["total"], initial=progress["total"] - progress["queued"], unit="msg") as bar:
            result = engine.drain(mailing_id, progress=bar.update)
        progress = selectors.mailing_progress(mailing_id)
        mailing.refresh_from_db()
        if mailing.last_error and result.sent == 0:
            raise CommandError(mailing.last_error.splitlines()[0])
        self.stdout.write(
            f"mailing {mailing_id}: {progress['sent']} sent, {progress['failed']} failed, "
            f"{progress['deferred']} deferred, {progress['skipped']} skipped, {progress['queued']} queued ({mailing.state})"
        )
