import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")

app = Celery("mailplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The named queues (settings.CELERY_TASK_QUEUES) come from mailplatform.broker.
app.autodiscover_tasks()
# Apps turn their event rows into outbound webhooks in `<app>.webhook_tasks` (mailplatform imports no app).
app.autodiscover_tasks(related_name="webhook_tasks")
