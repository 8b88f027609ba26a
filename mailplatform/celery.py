import os

from celery import Celery
from kombu import Queue

from mailplatform import beat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")

app = Celery("mailplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Named queues so sending never waits behind an import, and bounces never wait behind sending.
QUEUES = ("default", "imports", "sending", "bounces")
app.conf.task_queues = [Queue(name) for name in QUEUES]
# The registry's own dict: the apps fill it from AppConfig.ready, before beat reads it.
app.conf.beat_schedule = beat.SCHEDULE
app.autodiscover_tasks()
# Apps turn their event rows into outbound webhooks in `<app>.webhook_tasks` (mailplatform imports no app).
app.autodiscover_tasks(related_name="webhook_tasks")
