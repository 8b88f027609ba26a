import os

from celery import Celery

from mailplatform import beat
from mailplatform.workers import HeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")

app = Celery("mailplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The named queues (settings.CELERY_TASK_QUEUES) come from mailplatform.broker.
# The registry's own dict: the apps fill it from AppConfig.ready, before beat reads it.
app.conf.beat_schedule = beat.SCHEDULE
# Each worker records a heartbeat in Redis (manage.py worker_health, the metrics).
app.steps["worker"].add(HeartbeatStep)
app.autodiscover_tasks()
# Apps turn their event rows into outbound webhooks in `<app>.webhook_tasks` (mailplatform imports no app).
app.autodiscover_tasks(related_name="webhook_tasks")
