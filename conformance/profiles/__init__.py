"""Gravity SDOH Clinical Care profile rules for the four resource types a referral writes (pure).

``check_profile`` raises ``ProfileViolation`` (422) with one issue per problem, each carrying the
FHIRPath of the offending element. Structure has already been checked by
``conformance.resources``; these rules add cardinalities, fixed values and required codes.
"""

from collections.abc import Callable
from typing import Any

from conformance.errors import Issue, ProfileViolation, raise_if_issues
from conformance.profiles.consent import consent_issues
from conformance.profiles.procedure import procedure_issues
from conformance.profiles.service_request import service_request_issues
from conformance.profiles.task import task_issues
from conformance.subscriptions.subscription import subscription_issues

_CHECKS: dict[str, Callable[[dict[str, Any]], list[Issue]]] = {
    "Task": task_issues,
    "ServiceRequest": service_request_issues,
    "Procedure": procedure_issues,
    "Consent": consent_issues,
    "Subscription": subscription_issues,
}


def check_profile(resource: dict[str, Any], *, root: str | None = None) -> None:
    """Raise ``ProfileViolation`` when ``resource`` breaks its Gravity profile."""
    check = _CHECKS.get(str(resource.get("resourceType")))
    if check is None:
        return
    issues = check(resource)
    if root:
        issues = [_rooted(issue, resource["resourceType"], root) for issue in issues]
    raise_if_issues(issues, ProfileViolation)


def _rooted(issue: Issue, resource_type: str, root: str) -> Issue:
    expressions = tuple(
        root + e[len(resource_type) :] if e.startswith(resource_type) else e
        for e in issue.expression
    )
    return Issue(issue.detail, expressions, issue.code, issue.severity)


__all__ = ["check_profile"]
