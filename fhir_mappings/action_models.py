"""The CBO JSON API's action bodies: pydantic request models, also its OpenAPI schema.

Reason and outcome codes come from ``urn:loopgate:codesystem:referral-reason``
(``fhir_mappings.reasons``); each action accepts only the codes listed for it there.
"""

from datetime import date
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fhir_mappings.reasons import CancelReason, DeclineReason, FailReason, HoldReason, OutcomeCode

ReasonText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
MessageText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)
]
_Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ReasonedAction(_Action):
    reason: str
    text: ReasonText | None = Field(
        None,
        description="The reason in words, shown to the referrer as Task.statusReason.text; "
        "defaults to the reason code's display. Required when reason is other.",
    )

    @model_validator(mode="after")
    def _other_needs_text(self) -> Self:
        if self.reason == "other" and not self.text:
            raise ValueError("text is required when reason is other")
        return self


class CodingIn(_Action):
    """A code from a code system, e.g. a SNOMED CT procedure."""

    system: _Token = Field(description="Code system URI, e.g. http://snomed.info/sct.")
    code: _Token = Field(description="The code, e.g. 467771000124109.")
    display: _Token | None = Field(None, description="Human-readable name of the code.")


class AcceptAction(_Action):
    """Agree to serve the client (requested → accepted)."""


class DeclineAction(_ReasonedAction):
    """Refuse the referral before doing any work (requested → rejected)."""

    reason: DeclineReason = Field(description="Why the referral is declined.")


class StartAction(_Action):
    """Begin work on an accepted referral (accepted → in-progress)."""


class HoldAction(_ReasonedAction):
    """Pause work (accepted or in-progress → on-hold)."""

    reason: HoldReason = Field(description="Why work is paused, e.g. waitlisted.")


class ResumeAction(_Action):
    """Continue paused work (on-hold → in-progress)."""


class CompleteAction(_Action):
    """Report the service delivered (→ completed, with an SDOHCC Procedure)."""

    outcome: OutcomeCode = Field(description="What came of the referral.")
    service: CodingIn | None = Field(
        None, description="The service delivered; defaults to the service requested."
    )
    performed: AwareDatetime | date | None = Field(
        None, description="When the service was delivered (a date, or a time with a zone)."
    )
    note: MessageText | None = Field(
        None, description="A note to the referrer. Required when outcome is other."
    )

    @model_validator(mode="after")
    def _other_needs_note(self) -> Self:
        if self.outcome == "other" and not self.note:
            raise ValueError("note is required when outcome is other")
        return self


class FailAction(_ReasonedAction):
    """Report that the service was attempted but could not be delivered (→ failed)."""

    reason: FailReason = Field(description="Why the service could not be delivered.")


class CancelAction(_ReasonedAction):
    """Stop the referral without delivering the service (→ cancelled)."""

    reason: CancelReason = Field(description="Why the referral is cancelled.")


class MessageAction(_Action):
    """Add a message to the referral's conversation (a Task.note the referrer sees)."""

    text: MessageText = Field(description="The message (markdown).")


ReferralAction = (
    AcceptAction
    | DeclineAction
    | StartAction
    | HoldAction
    | ResumeAction
    | CompleteAction
    | FailAction
    | CancelAction
    | MessageAction
)
