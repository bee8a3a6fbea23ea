"""Live updates for people: referral events per organization, streamed as Server-Sent Events
at ``/api/v1/events`` to every Loopgate process's clients."""

from gateway.live.hub import LiveHub
from gateway.live.recorder import ReferralEventRecorder
from gateway.live.routes import live_router
from gateway.live.stream import StreamOptions

__all__ = ["LiveHub", "ReferralEventRecorder", "StreamOptions", "live_router"]
