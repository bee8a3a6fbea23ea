"""The one error hierarchy of Loopgate: each class owns its HTTP status and FHIR issue code.

The FHIR door renders these as OperationOutcome (``conformance.outcome``), the JSON door as
RFC 9457 problem details. A ``detail`` is shown to the client, so it must never carry PHI,
payload fragments or exception text: say what is wrong and where (``expression``), not what
the value was.

    GatewayError                    500 exception
    ├── BadRequest                  400 invalid       malformed body, header or parameter
    │   └── UnknownSearchParameter  400 not-supported
    ├── Unauthenticated             401 login
    ├── Forbidden                   403 forbidden     no part in it, or a field one may not change
    ├── ResourceNotFound            404 not-found
    │   └── UnknownResourceType     404 not-supported
    ├── MethodNotAllowed            405 not-supported
    ├── NotAcceptable               406 not-supported (XML until it is supported)
    ├── Conflict                    409 conflict      e.g. delete of a referenced resource
    ├── ResourceGone                410 deleted
    ├── VersionConflict             412 conflict      If-Match does not match
    │   └── MultipleMatches         412 multiple-matches (conditional create)
    ├── PayloadTooLarge             413 too-long
    ├── UnsupportedMediaType        415 not-supported
    └── Unprocessable               422 processing    parses, but breaks a rule
        ├── ProfileViolation        422 invariant     a Gravity/US Core profile rule
        ├── TransitionNotAllowed    422 business-rule the Task state machine
        └── BusinessRuleViolation   422 business-rule any other workflow rule
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

# Issue types: http://hl7.org/fhir/R4/valueset-issue-type.html


@dataclass(frozen=True)
class Issue:
    """One problem found in a request; ``expression`` is a FHIRPath to the element."""

    detail: str
    expression: tuple[str, ...] = ()
    code: str | None = None
    severity: str = "error"


class GatewayError(Exception):
    """Base for every failure we report; subclasses pin status and issue code."""

    status: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        expression: Sequence[str] = (),
        issues: Sequence[Issue] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expression = tuple(expression)
        self.headers = dict(headers or {})
        self.issues: tuple[Issue, ...] = tuple(issues) or (
            Issue(detail=detail, expression=self.expression, code=self.issue_code),
        )


class BadRequest(GatewayError):
    status = 400
    issue_code = "invalid"
    title = "Bad request"


class UnknownSearchParameter(BadRequest):
    issue_code = "not-supported"
    title = "Unknown search parameter"


class Unauthenticated(GatewayError):
    status = 401
    issue_code = "login"
    title = "Authentication required"


class Forbidden(GatewayError):
    status = 403
    issue_code = "forbidden"
    title = "Forbidden"


class ResourceNotFound(GatewayError):
    status = 404
    issue_code = "not-found"
    title = "Not found"


class UnknownResourceType(ResourceNotFound):
    issue_code = "not-supported"
    title = "Unsupported resource type"


class MethodNotAllowed(GatewayError):
    status = 405
    issue_code = "not-supported"
    title = "Method not allowed"


class NotAcceptable(GatewayError):
    status = 406
    issue_code = "not-supported"
    title = "Not acceptable"


class Conflict(GatewayError):
    status = 409
    issue_code = "conflict"
    title = "Conflict"


class ResourceGone(GatewayError):
    status = 410
    issue_code = "deleted"
    title = "Gone"


class VersionConflict(GatewayError):
    status = 412
    issue_code = "conflict"
    title = "Precondition failed"


class MultipleMatches(VersionConflict):
    issue_code = "multiple-matches"
    title = "Multiple matches"


class PayloadTooLarge(GatewayError):
    status = 413
    issue_code = "too-long"
    title = "Payload too large"


class UnsupportedMediaType(GatewayError):
    status = 415
    issue_code = "not-supported"
    title = "Unsupported media type"


class Unprocessable(GatewayError):
    status = 422
    issue_code = "processing"
    title = "Unprocessable entity"


class ProfileViolation(Unprocessable):
    issue_code = "invariant"
    title = "Profile violation"


class TransitionNotAllowed(Unprocessable):
    issue_code = "business-rule"
    title = "Status transition not allowed"


class BusinessRuleViolation(Unprocessable):
    issue_code = "business-rule"
    title = "Business rule violated"


def raise_if_issues(issues: Sequence[Issue], error: type[GatewayError] = ProfileViolation) -> None:
    """Raise ``error`` carrying every issue found, or return when there is none."""
    if issues:
        first = issues[0]
        summary = first.detail if len(issues) == 1 else f"{len(issues)} problems found"
        raise error(summary, expression=first.expression, issues=issues)
