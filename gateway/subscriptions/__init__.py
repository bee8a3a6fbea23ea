"""Topic-based FHIR Subscriptions (R4 Backport IG 1.1): their rows, the write listener that
turns Task and ServiceRequest writes into numbered events, delivery through the outbox,
heartbeats, and the ``$status`` and ``$events`` operations."""

from gateway.subscriptions.delivery import subscription_handler
from gateway.subscriptions.events import SUBSCRIPTION_KIND, SubscriptionEvents
from gateway.subscriptions.heartbeats import Heartbeats
from gateway.subscriptions.operations import subscription_router
from gateway.subscriptions.rendering import Renderer
from gateway.subscriptions.status import StatusMoves

__all__ = [
    "SUBSCRIPTION_KIND",
    "Heartbeats",
    "Renderer",
    "StatusMoves",
    "SubscriptionEvents",
    "subscription_handler",
    "subscription_router",
]
