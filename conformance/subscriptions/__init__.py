"""Topic-based Subscriptions, FHIR R4 Backport IG 1.1 (pure): the Gravity topics, reading and
refusing Subscriptions, matching writes against filters, and notification Bundles."""

from conformance.subscriptions.channels import (
    CHANNEL_TYPES,
    EMAIL,
    REST_HOOK,
    email_address,
    rest_hook_problem,
)
from conformance.subscriptions.filters import (
    EventFocus,
    FilterKey,
    event_focus,
    event_keys,
    filter_criteria,
    filter_keys,
    raises_event,
)
from conformance.subscriptions.notification import (
    NotificationEvent,
    SubscriptionState,
    notification_bundle,
    status_parameters,
    status_searchset,
)
from conformance.subscriptions.subscription import (
    BACKPORT_SUBSCRIPTION,
    CONTENTS,
    SubscriptionSpec,
    read_subscription,
    subscription_issues,
)
from conformance.subscriptions.topics import TOPIC_TYPES, TOPICS, Topic

__all__ = [
    "BACKPORT_SUBSCRIPTION",
    "CHANNEL_TYPES",
    "CONTENTS",
    "EMAIL",
    "REST_HOOK",
    "TOPICS",
    "TOPIC_TYPES",
    "EventFocus",
    "FilterKey",
    "NotificationEvent",
    "SubscriptionSpec",
    "SubscriptionState",
    "Topic",
    "email_address",
    "event_focus",
    "event_keys",
    "filter_criteria",
    "filter_keys",
    "notification_bundle",
    "raises_event",
    "read_subscription",
    "rest_hook_problem",
    "status_parameters",
    "status_searchset",
    "subscription_issues",
]
