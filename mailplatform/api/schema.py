"""OpenAPI: the bearer-key security scheme, each operation's scope, and the problem responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from mailplatform.api.auth import required_scope

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

COMMON_ERRORS = {
    "400": "Invalid input: the problem's `errors` name each field.",
    "401": "No API key, or an invalid, expired or revoked one.",
    "403": "The key lacks the scope this operation needs.",
    "413": "The request body is too large.",
    "429": "Rate limit exceeded; see Retry-After.",
}
OBJECT_ERRORS = {"404": "No such object."}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "mailplatform.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from Settings > API keys, e.g. `Bearer phk_1a2b3c4d_...`",
        }


class ScopedAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return operation
        problem = ResolvedComponent(
            name="Problem", type=ResolvedComponent.SCHEMA, object="Problem", schema=PROBLEM_SCHEMA
        )
        registry.register_on_missing(problem)
        scope = None if getattr(self.view, "no_scope_required", False) else required_scope(self.view, method)
        if scope:
            operation["x-required-scope"] = scope
            note = f"Requires the scope `{scope}`."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        errors = dict(COMMON_ERRORS)
        if "{" in path or getattr(self.view, "may_404", False):
            errors.update(OBJECT_ERRORS)
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
            errors["409"] = (
                "The request conflicts with the current state (a duplicate name, a finished send)."
            )
        for code, text in {**errors, **getattr(self.view, "extra_problem_responses", {})}.items():
            operation["responses"].setdefault(
                code, {"description": text, "content": {"application/problem+json": {"schema": problem.ref}}}
            )
        if "429" in operation["responses"]:
            operation["responses"]["429"]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        return operation
