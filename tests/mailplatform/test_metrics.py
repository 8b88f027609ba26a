"""The Prometheus endpoint, its protection, the alert rules (promtool) and the dashboard's names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT

OPS = REPO_ROOT / "ops"
TOKEN = "t" * 32


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = TOKEN

    def get() -> dict[str, dict[tuple, float]]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        return exposed(response.content.decode())

    return get


def exposed(text: str) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}}, plus every family's own name (empty families too)."""
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, {})
        if family.type == "counter":
            found.setdefault(family.name + "_total", {})
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.django_db
def test_metrics_are_off_unless_enabled(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_bearer_token(client, settings, scrape):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert scrape()["posthorn_metrics_collector_failed"], "no collector ran"


def test_enabling_metrics_without_a_token_stops_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mailplatform.settings", "METRICS_ENABLED": "true", "DEBUG": "true",
           "METRICS_TOKEN": "short", "REDIS_URL": "redis://127.0.0.1:6399/0",
           "DATABASE_URL": "postgresql://x@127.0.0.1/x"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr


@pytest.mark.django_db
def test_a_scrape_is_a_handful_of_cheap_queries_and_every_collector_answers(
    scrape, django_assert_max_num_queries
):
    from delivery.models import Relay

    for i in range(5):
        Relay.objects.create(name=f"r{i}", host="127.0.0.1", port=25, security="none", per_hour=100)
    with django_assert_max_num_queries(12):  # not one per relay, and not one per message
        metrics = scrape()
    failed = metrics["posthorn_metrics_collector_failed"]
    assert failed and not any(failed.values()), f"a collector failed: {failed}"
    assert len(metrics["posthorn_relay_up"]) == 5


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"\bposthorn_[a-z_]+\b", text))


def test_every_metric_the_rules_and_the_dashboard_name_is_on_the_endpoint(scrape, db):
    dashboard = json.loads((OPS / "grafana" / "posthorn-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = _names_in("\n".join(exprs)) | _names_in((OPS / "prometheus" / "posthorn-alerts.yml").read_text())
    assert len(named) >= 15
    missing = named - set(scrape())
    assert not missing, f"named by the rules or the dashboard but not exposed: {sorted(missing)}"


def test_the_alert_rules_pass_their_promtool_unit_tests():
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (apt-get install prometheus): the alert rule tests cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "test", "rules", "posthorn-alerts.test.yml"],
        cwd=OPS / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
