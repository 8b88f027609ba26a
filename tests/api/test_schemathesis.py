"""schemathesis against our own schema, in-process: no 5xx, every response matching the schema.

Kept small (a few examples per operation) so the suite stays quick; raise POSTHORN_SCHEMATHESIS_EXAMPLES
for a deeper run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks

pytestmark = pytest.mark.django_db
# What the issue asks: no 5xx, and every response (status, content type, headers, body) as documented.
# Not `positive_data_acceptance`: the schema cannot say every rule (an unreachable webhook host, an
# unknown list id), so a schema-valid body may still earn a documented 400.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = int(os.environ.get("POSTHORN_SCHEMATHESIS_EXAMPLES", "6"))


# Loaded at collection, in-process: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: a request must not close the connection holding the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def full_key(make_key):
    _, key = make_key("admin", rate_limit_per_minute=100_000)
    return key


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, full_key, keep_test_connection):
    case.call_and_validate(headers={"Authorization": f"Bearer {full_key}"}, checks=CHECKS)
