"""Errors as RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457), one stable
``type`` URI per kind of error, documented at that URI."""

import re
from typing import Any

from conformance.errors import GatewayError

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_slug(error: GatewayError) -> str:
    """``TransitionNotAllowed`` → ``transition-not-allowed``: the kind, stable across releases."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__).lower()


def problem_from_error(
    error: GatewayError, *, type_base: str, instance: str | None, request_id: str | None
) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "type": f"{type_base}/{problem_slug(error)}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        problem["instance"] = instance
    if request_id:
        problem["request_id"] = request_id
    items = [
        {"detail": issue.detail, **({"pointer": issue.expression[0]} if issue.expression else {})}
        for issue in error.issues
    ]
    if len(items) > 1 or (items and items[0].get("pointer")):
        problem["errors"] = items
    return problem


PROBLEM_DOCS: dict[str, str] = {
    "bad-request": "The request is malformed: bad JSON, a missing field, a value of the wrong "
    "type or format. Fix the request; retrying it unchanged will fail again.",
    "unauthenticated": "No valid credential: send Authorization: Bearer <API key or token>.",
    "forbidden": "The credential is valid but may not do this (another organization's "
    "referral, a move only the referring organization makes).",
    "resource-not-found": "There is no such referral or record for your organization.",
    "conflict": "The request conflicts with the current state; read it again and retry.",
    "version-conflict": "Someone changed the referral since you read it; read it again.",
    "unprocessable": "The request is well formed but cannot be carried out.",
    "business-rule-violation": "A referral workflow rule refuses it (e.g. completing "
    "without an outcome, or an Idempotency-Key reused for another request).",
    "transition-not-allowed": "The referral cannot move to that status from where it is "
    "(e.g. start before accept, anything after completed).",
    "profile-violation": "What the action would store breaks a Gravity profile rule.",
    "payload-too-large": "The body is larger than Loopgate accepts.",
    "unsupported-media-type": "Send application/json.",
    "method-not-allowed": "This path does not take this method.",
}
