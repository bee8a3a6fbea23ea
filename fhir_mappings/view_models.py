"""The CBO JSON referral view: pydantic models that are also the JSON API's OpenAPI schema.

Times are FHIR date/dateTime/instant strings exactly as stored (ISO 8601, possibly partial),
so nothing is lost or re-zoned on the way from FHIR to JSON.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fhir_mappings.action_moves import ActionName

TaskStatus = Literal[
    "draft",
    "requested",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]
Priority = Literal["routine", "urgent", "asap", "stat"]
ConsentState = Literal[
    "none", "draft", "proposed", "active", "rejected", "inactive", "entered-in-error"
]
WithheldReason = Literal["consent-required"]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodingView(_View):
    """One code from a code system."""

    system: str | None = Field(None, description="Code system URI.")
    code: str | None = Field(None, description="The code.")
    display: str | None = Field(None, description="Human-readable name of the code.")


class ConceptView(_View):
    """A coded concept: its main coding and the text a person should read."""

    system: str | None = Field(None, description="Code system URI of the main coding.")
    code: str | None = Field(None, description="The main code.")
    display: str | None = Field(None, description="Display of the main code.")
    text: str | None = Field(None, description="Text to show: the concept's text or a display.")


class NeedView(_View):
    """The social need, as a Gravity SDOH category."""

    code: str = Field(
        description="SDOH category code from the Gravity temporary code system, "
        "e.g. food-insecurity."
    )
    display: str | None = Field(None, description="e.g. Food Insecurity.")


class StatusReasonView(_View):
    """Why the referral is in its current status (decline, hold, fail or cancel reason)."""

    code: str | None = Field(
        None,
        description="Code from urn:loopgate:codesystem:referral-reason, when the reason is coded.",
    )
    text: str = Field(description="The reason as written.")


class ClinicalReason(_View):
    """Why the client was referred: a condition, a screening answer or a coded reason."""

    text: str | None = Field(None, description="The reason to show, e.g. Food insecurity.")
    codes: list[CodingView] = Field(default_factory=list, description="Its codes.")
    value: str | None = Field(
        None, description="For a screening or assessment observation, the answer recorded."
    )


class ContactPointView(_View):
    """A phone number, e-mail address or other way to reach someone."""

    system: str | None = Field(None, description="phone, email, fax, sms, url, pager or other.")
    value: str = Field(description="The number, address or URL.")
    use: str | None = Field(None, description="work, home, mobile, temp.")


class ReferrerView(_View):
    """Who referred the client, and how to reach them."""

    reference: str | None = Field(
        None, description="FHIR reference of Task.requester (PractitionerRole or Organization)."
    )
    display: str | None = Field(None, description="How the requester is labelled on the Task.")
    organization: str | None = Field(None, description="Referring organization's name.")
    clinician: str | None = Field(None, description="Referring clinician's name.")
    role: str | None = Field(None, description="The clinician's role or specialty.")
    contact: list[ContactPointView] = Field(
        default_factory=list,
        description="Ways to reach the referrer: the role's, then the clinician's, then the "
        "organization's.",
    )


class PersonNameView(_View):
    text: str = Field(description="The full name to show.")
    family: str | None = Field(None, description="Family name.")
    given: list[str] = Field(default_factory=list, description="Given names, in order.")


class AddressView(_View):
    lines: list[str] = Field(default_factory=list, description="Street lines.")
    city: str | None = None
    district: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    text: str | None = Field(None, description="The address as one text, when given so.")


class ClientView(_View):
    """The client (the patient), reduced to the minimum necessary for this organization."""

    withheld: bool = Field(
        description="True when every client detail is withheld (see withheld_reason)."
    )
    withheld_reason: WithheldReason | None = Field(
        None,
        description="consent-required: the partner agreement requires an active Consent "
        "covering this disclosure, and none does yet.",
    )
    contact_prohibited: bool = Field(
        description="True when the referral says the client must not be contacted "
        "(contacting-subject-prohibited); phone, e-mail and address are then never shown."
    )
    name: PersonNameView | None = None
    birth_date: str | None = Field(None, description="FHIR date, e.g. 1986-03-14.")
    phone: str | None = None
    email: str | None = None
    address: AddressView | None = None
    preferred_language: CodingView | None = Field(
        None, description="Preferred language (BCP 47 code), e.g. en-US."
    )


class ConsentView(_View):
    """The client's consent to share their information with this organization."""

    state: ConsentState = Field(
        description="Status of the most relevant Consent on the referral; none when there is none."
    )
    covers_disclosure: bool = Field(
        description="True when an active information-disclosure Consent covers this "
        "organization now."
    )
    required: bool = Field(
        description="True when this organization's partner agreement requires such a Consent "
        "before client details are shown."
    )
    date: str | None = Field(None, description="When the Consent was given (Consent.dateTime).")
    expires: str | None = Field(None, description="End of the Consent's provision period.")


class MessageView(_View):
    """One message on the referral's conversation (a Task.note), oldest first."""

    author: str | None = Field(None, description="FHIR reference of the author.")
    author_display: str | None = Field(None, description="The author's name as written.")
    time: str | None = Field(None, description="When it was written.")
    text: str = Field(description="The message (markdown).")


class ActivityView(_View):
    """A service delivered for the referral (an SDOHCC Procedure, or a procedure code)."""

    reference: str | None = Field(None, description="FHIR reference of the Procedure.")
    status: str | None = Field(None, description="Procedure status, usually completed.")
    code: ConceptView | None = Field(None, description="The service delivered.")
    performed: str | None = Field(None, description="When it was performed (FHIR dateTime).")


class OutcomeView(_View):
    """What came of the referral."""

    code: str | None = Field(
        None, description="Outcome code from urn:loopgate:codesystem:referral-reason."
    )
    display: str | None = Field(None, description="The outcome to show.")
    activities: list[ActivityView] = Field(default_factory=list)


class StatusChange(_View):
    """One status change of the referral and who made it."""

    from_status: TaskStatus | None = Field(
        None, description="Status before; null for the first version known."
    )
    to_status: TaskStatus
    time: str | None = Field(None, description="When the change was stored.")
    version: str | None = Field(None, description="The Task version that made the change.")
    reason: StatusReasonView | None = None
    who: str | None = Field(
        None, description="FHIR reference of who made the change (a person or organization)."
    )
    on_behalf_of: str | None = Field(
        None, description="FHIR reference of the organization they acted for."
    )


class ReferralView(_View):
    """A referral as a community organization sees it."""

    id: str = Field(description="The referral id (the FHIR Task id).")
    version: str | None = Field(
        None, description="Current version; send it back as If-Match to avoid lost updates."
    )
    status: TaskStatus
    status_reason: StatusReasonView | None = None
    business_status: str | None = Field(
        None, description="Finer-grained progress text set by the organization."
    )
    priority: Priority | None = None
    created: str | None = Field(None, description="When the referral was made.")
    updated: str | None = Field(None, description="When the referral last changed.")
    due: str | None = Field(
        None,
        description="When the next step is due: a response while requested, completion while "
        "accepted, in progress or on hold; null when closed.",
    )
    need: NeedView | None = None
    service: ConceptView | None = Field(None, description="The service requested.")
    reasons: list[ClinicalReason] = Field(
        default_factory=list, description="Why the client was referred (withheld with the client)."
    )
    referrer: ReferrerView
    client: ClientView
    consent: ConsentView
    messages: list[MessageView] = Field(
        default_factory=list,
        description="The conversation both sides see (Task.note), oldest first.",
    )
    outcome: OutcomeView | None = None
    timeline: list[StatusChange] = Field(
        default_factory=list, description="Every status change, oldest first."
    )
    allowed_actions: list[ActionName] = Field(
        default_factory=list, description="What the receiving organization can do next."
    )
