"""The OpenAPI schema and the interactive docs, served from vendored assets (no CDN)."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_schema_is_served_without_a_key():
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if "json" in response["Content-Type"] else yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    operation = schema["paths"]["/api/v1/webhooks/"]["post"]
    assert operation["x-required-scope"] == "webhooks:manage"
    for code in ("400", "401", "403", "413", "429"):
        assert "application/problem+json" in operation["responses"][code]["content"]


def test_docs_use_only_local_assets():
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", page)
    assert external == [], external
    assert "/static/mailplatform/swagger-ui/swagger-ui-bundle.js" in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js", "LICENSE"):
        assert finders.find(f"mailplatform/swagger-ui/{asset}"), asset


def test_vendored_bundle_is_served(client):
    response = client.get("/static/mailplatform/swagger-ui/swagger-ui.css")
    assert response.status_code == 200
