import os

from celery import Celery, signals

from mailplatform import beat, logs
from mailplatform.workers import HeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")

app = Celery("mailplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The named queues (settings.CELERY_TASK_QUEUES) come from mailplatform.broker.
# The registry's own dict: the apps fill it from AppConfig.ready, before beat reads it.
app.conf.beat_schedule = beat.SCHEDULE
# Each worker records a heartbeat in Redis (manage.py worker_health, the metrics).
app.steps["worker"].add(HeartbeatStep)
# Task logs carry the task's ids and the request id it was published under (mailplatform/logs.py).
signals.before_task_publish.connect(logs.task_headers, weak=False)
signals.task_prerun.connect(logs.task_started, weak=False)
signals.task_postrun.connect(logs.task_finished, weak=False)


@signals.after_setup_logger.connect(weak=False)
@signals.after_setup_task_logger.connect(weak=False)
def _json_logs(logger=None, **kwargs) -> None:
    from django.conf import settings

    if settings.LOG_FORMAT == "json":
        logs.use_json_on_handlers(logger)


app.autodiscover_tasks()
# Apps turn their event rows into outbound webhooks in `<app>.webhook_tasks` (mailplatform imports no app).
app.autodiscover_tasks(related_name="webhook_tasks")
