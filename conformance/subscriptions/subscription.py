"""Read a Subscription with the Backport IG's R4 profile into what Loopgate will honour, or
refuse it (422) with one issue per problem, each with the FHIRPath of the element.

Profile: https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription.html
The topic is ``criteria``; each ``backport-filter-criteria`` extension on ``_criteria`` is one
filter (``Task?requester=…``), all of which must hold; the content level is the
``backport-payload-content`` extension on ``channel._payload``. A server "SHALL reject" what it
cannot honour: an unknown topic, a filter the topic cannot filter by, a channel, payload type
or content level it does not support.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from conformance.errors import GatewayError, Issue, ProfileViolation, raise_if_issues
from conformance.search_request import parse_search
from conformance.subscriptions.channels import (
    CHANNEL_TYPES,
    EMAIL,
    REST_HOOK,
    email_address,
    parse_header,
    rest_hook_problem,
)
from conformance.subscriptions.topics import TOPICS, Topic

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
BACKPORT_SUBSCRIPTION = f"{BACKPORT}backport-subscription"
FILTER_CRITERIA = f"{BACKPORT}backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}backport-payload-content"
HEARTBEAT_PERIOD = f"{BACKPORT}backport-heartbeat-period"
TIMEOUT = f"{BACKPORT}backport-timeout"
MAX_COUNT = f"{BACKPORT}backport-max-count"

CONTENTS = ("empty", "id-only", "full-resource")
DEFAULT_CONTENT = "id-only"
"""When ``backport-payload-content`` is absent: the level every Gravity party supports."""
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
STATUSES = ("requested", "active", "error", "off")
MAX_TIMEOUT_S = 30
MAX_FILTERS = 16


@dataclass(frozen=True)
class SubscriptionSpec:
    """What a valid Subscription asks for, in Loopgate's terms."""

    topic: Topic
    filters: tuple[tuple[str, str], ...]
    """(parameter, value) search pairs on the topic's resource type; all must match."""
    channel: str
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    content: str
    heartbeat_s: int
    """0: no heartbeats."""
    timeout_s: int | None
    status: str


def read_subscription(resource: dict[str, Any]) -> SubscriptionSpec:
    """``resource`` as a ``SubscriptionSpec``, or ``ProfileViolation`` (422)."""
    issues = subscription_issues(resource)
    raise_if_issues(issues, ProfileViolation)
    return _spec(resource)


def subscription_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every reason Loopgate cannot honour ``resource`` (empty when it can)."""
    issues: list[Issue] = []
    status = resource.get("status")
    if status not in STATUSES:
        issues.append(_issue("status must be requested, active, error or off", "status", "value"))
    topic = TOPICS.get(str(resource.get("criteria", "")))
    if topic is None:
        issues.append(
            _issue(
                "criteria must be a supported topic: " + ", ".join(TOPICS),
                "criteria",
                "not-supported",
            )
        )
    else:
        issues += _filter_issues(resource, topic)
    channel = resource.get("channel") or {}
    kind = channel.get("type")
    if kind not in CHANNEL_TYPES:
        issues.append(
            _issue("channel.type must be rest-hook or email", "channel.type", "not-supported")
        )
    endpoint = str(channel.get("endpoint") or "")
    if kind == REST_HOOK:
        problem = rest_hook_problem(endpoint)
        if problem:
            issues.append(_issue(f"channel.endpoint {problem}", "channel.endpoint", "value"))
    if kind == EMAIL and email_address(endpoint) is None:
        issues.append(
            _issue("channel.endpoint must be one mailto: address", "channel.endpoint", "value")
        )
    for index, line in enumerate(channel.get("header") or []):
        if parse_header(str(line)) is None:
            issues.append(
                _issue(
                    "channel.header must be 'Name: value' and not a framing header "
                    "(Host, Content-Type, Content-Length, …)",
                    f"channel.header[{index}]",
                    "value",
                )
            )
    payload = channel.get("payload")
    if payload is not None and payload not in PAYLOAD_TYPES:
        issues.append(
            _issue(
                "channel.payload must be application/fhir+json", "channel.payload", "not-supported"
            )
        )
    content = _content(channel)
    if content not in CONTENTS:
        issues.append(
            _issue(
                "the payload content must be empty, id-only or full-resource",
                f"channel.payload.extension('{PAYLOAD_CONTENT}')",
                "not-supported",
            )
        )
    elif kind == EMAIL and content == "full-resource":
        issues.append(
            _issue(
                "e-mail carries no resource content: use empty or id-only",
                f"channel.payload.extension('{PAYLOAD_CONTENT}')",
                "not-supported",
            )
        )
    for url, low, high in ((HEARTBEAT_PERIOD, 0, None), (TIMEOUT, 1, MAX_TIMEOUT_S)):
        present = any(
            isinstance(e, dict) and e.get("url") == url for e in channel.get("extension") or []
        )
        value = _extension(channel, url, "valueUnsignedInt")
        if present and (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            bound = f" and at most {high}" if high is not None else ""
            issues.append(
                _issue(
                    f"{url.rsplit('/', 1)[1]} must be a whole number of seconds, at least "
                    f"{low}{bound}",
                    f"channel.extension('{url}')",
                    "value",
                )
            )
    return issues


def _filter_issues(resource: dict[str, Any], topic: Topic) -> list[Issue]:
    issues: list[Issue] = []
    filters = _filter_strings(resource)
    where = f"criteria.extension('{FILTER_CRITERIA}')"
    if len(filters) > MAX_FILTERS:
        return [_issue(f"at most {MAX_FILTERS} filters", where, "too-costly")]
    for text in filters:
        pairs = filter_pairs(text, topic)
        if pairs is None:
            issues.append(
                _issue(f"a filter must read {topic.resource_type}?name=value[&…]", where, "value")
            )
            continue
        for name, _ in pairs:
            if name.split(":", 1)[0] not in topic.filters:
                issues.append(
                    _issue(
                        f"the topic cannot filter by '{name[:64]}'; it can by "
                        + ", ".join(topic.filters),
                        where,
                        "not-supported",
                    )
                )
        try:
            parse_search(topic.resource_type, pairs, local_base=None)
        except GatewayError as error:
            issues.append(_issue(f"a filter is not valid: {error.detail}", where, "value"))
    return issues


def filter_pairs(text: str, topic: Topic) -> list[tuple[str, str]] | None:
    """``Task?owner=Organization/1&status=accepted`` → its pairs; None when malformed."""
    prefix, question, query = text.partition("?")
    if not question:
        prefix, query = topic.resource_type, text
    if prefix != topic.resource_type:
        return None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    return pairs or None


def _spec(resource: dict[str, Any]) -> SubscriptionSpec:
    topic = TOPICS[str(resource["criteria"])]
    channel = resource["channel"]
    pairs: list[tuple[str, str]] = []
    for text in _filter_strings(resource):
        pairs += filter_pairs(text, topic) or []
    headers = tuple(
        header for line in channel.get("header") or [] if (header := parse_header(str(line)))
    )
    timeout = _extension(channel, TIMEOUT, "valueUnsignedInt")
    return SubscriptionSpec(
        topic=topic,
        filters=tuple(pairs),
        channel=str(channel["type"]),
        endpoint=str(channel.get("endpoint") or ""),
        headers=headers,
        content=_content(channel),
        heartbeat_s=int(_extension(channel, HEARTBEAT_PERIOD, "valueUnsignedInt") or 0),
        timeout_s=int(timeout) if timeout is not None else None,
        status=str(resource["status"]),
    )


def _filter_strings(resource: dict[str, Any]) -> list[str]:
    extensions = (resource.get("_criteria") or {}).get("extension") or []
    return [
        str(e.get("valueString", ""))
        for e in extensions
        if isinstance(e, dict) and e.get("url") == FILTER_CRITERIA
    ]


def _content(channel: dict[str, Any]) -> str:
    for extension in (channel.get("_payload") or {}).get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == PAYLOAD_CONTENT:
            return str(extension.get("valueCode"))
    return DEFAULT_CONTENT


def _extension(element: dict[str, Any], url: str, key: str) -> Any:
    for extension in element.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension.get(key)
    return None


def _issue(detail: str, path: str, code: str) -> Issue:
    return Issue(detail, (f"Subscription.{path}",), code)
