"""Round trip: FHIR → JSON view → action → FHIR → view loses nothing the first view showed.

Records vary in status path, notes, reasons, consent, do-not-contact and missing pieces; each
step applies an action the view offers, runs the workflow's checks on the new Task (profile,
transition, owner edit rights) and compares the two views field by field.
"""

import copy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conformance.task_lifecycle import TERMINAL_STATUSES, Role, allowed_next_statuses
from conformance.task_rules import OWNER_EDITABLE, changed_elements
from fhir_mappings import (
    AcceptAction,
    ActivityView,
    CancelAction,
    CodingIn,
    CompleteAction,
    ConceptView,
    DeclineAction,
    DisclosurePolicy,
    FailAction,
    HoldAction,
    MessageAction,
    MessageView,
    ReferralAction,
    ReferralRecord,
    ReferralView,
    ResumeAction,
    StartAction,
    StatusChange,
    StatusReasonView,
    TaskChange,
    allowed_actions,
    referral_view_from_fhir,
)
from fhir_mappings.action_moves import TARGET_STATUS
from fhir_mappings.reasons import (
    REASON_SYSTEM,
    CancelReason,
    DeclineReason,
    FailReason,
    HoldReason,
    OutcomeCode,
    display_of,
)
from tests.conformance.examples import TEMP_CODES, consent, patient, service_request
from tests.fhir_mappings.referrals import (
    CBO,
    CBO_USER,
    HOSPITAL,
    NEW_PROCEDURE,
    START,
    apply,
    condition,
    instant,
    prohibit_contact,
    provenance,
    requester_organization,
    requester_practitioner,
    requester_role,
    stored,
)
from tests.fhir_mappings.referrals import task_at as example_task

Resource = dict[str, Any]

TEXTS = (
    st.text(
        alphabet=st.characters(categories=["L", "N", "P"], include_characters=" "),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
NOTE_AUTHORS: list[Resource] = [
    {"authorReference": {"reference": CBO, "display": "Eastside Community Food Bank"}},
    {"authorReference": {"reference": "Patient/pat-1001", "display": "Denise Rivera"}},
    {"authorReference": {"reference": "PractitionerRole/prr-dr-okafor"}},
    {"authorString": "Front desk"},
    {},
]
NOTE_TEXTS = ["Left a voicemail", "Needs a ride to the pantry", "Documents received", "Thanks!"]
CLIENT_DETAILS = ("Denise", "Rivera", "1986-03-14", "+1-555-201-4477", "denise.rivera@example.com")
CONTACT_DETAILS = ("+1-555-201-4477", "denise.rivera@example.com", "412 Elm Street", "62704")
EARLIEST = datetime(2024, 1, 1)
SERVICES = [
    CodingIn(system="http://snomed.info/sct", code="710925007", display="Provision of food"),
    CodingIn(system="http://snomed.info/sct", code="467681000124101"),
]


@dataclass(frozen=True)
class Case:
    record: ReferralRecord
    policy: DisclosurePolicy
    clock: datetime
    """When the last stored version was written."""


# -- strategies ------------------------------------------------------------------------------


@st.composite
def status_reasons(draw: st.DrawFn) -> Resource:
    code = draw(st.sampled_from(["waitlisted", "no-capacity", "other"]))
    words = draw(st.sampled_from(["At capacity", "Waiting for documents", "No answer"]))
    if draw(st.booleans()):
        return {"coding": [{"system": REASON_SYSTEM, "code": code}], "text": words}
    return {"text": words}


@st.composite
def notes(draw: st.DrawFn) -> Resource:
    note = copy.deepcopy(draw(st.sampled_from(NOTE_AUTHORS)))
    note["text"] = draw(st.sampled_from(NOTE_TEXTS))
    if draw(st.booleans()):
        note["time"] = "2025-03-10T20:00:00Z"
    return note


@st.composite
def first_versions(draw: st.DrawFn) -> Resource:
    """The Task as the hospital sent it, with optional parts present or not."""
    task = example_task()
    del task["meta"]
    if draw(st.booleans()):
        task["focus"] = {"reference": "ServiceRequest/sr-food-2001"}
    if draw(st.booleans()):
        task["requester"] = {"reference": HOSPITAL, "display": "Mercy Hospital"}
    for optional in ("priority", "restriction", "lastModified", "identifier", "input"):
        if draw(st.booleans()):
            task.pop(optional)
    if draw(st.booleans()):
        task["priority"] = draw(st.sampled_from(["routine", "urgent", "asap", "stat"]))
    if draw(st.booleans()):
        task["businessStatus"] = {"text": draw(st.sampled_from(["Contact attempted", "New"]))}
    initial = draw(st.lists(notes(), max_size=2))
    if initial:
        task["note"] = initial
    return task


@st.composite
def histories(draw: st.DrawFn, *, open_only: bool) -> tuple[list[TaskChange], datetime]:
    """A walk through the owner's moves (plus messages) from requested; open_only stops short
    of terminal statuses so an action can follow."""
    task, clock = draw(first_versions()), START
    first = stored(task, version=1, at=clock)
    changes = [
        TaskChange(first, provenance(first, who="PractitionerRole/prr", on_behalf_of=HOSPITAL))
    ]
    for _ in range(draw(st.integers(0, 4))):
        current = copy.deepcopy(changes[-1].task)
        moves = [
            s
            for s in allowed_next_statuses(current["status"], frozenset({Role.OWNER}))
            if not (open_only and s in TERMINAL_STATUSES)
        ]
        if not moves:
            break
        target = draw(st.sampled_from([*moves, "message"]))
        if target == "message":
            current.setdefault("note", []).append(draw(notes()))
        else:
            current["status"] = target
            current.pop("statusReason", None)
            if target in ("on-hold", "rejected", "cancelled", "failed"):
                current["statusReason"] = draw(status_reasons())
            if target == "completed":
                current["output"] = [
                    {
                        "type": {"coding": [{"system": TEMP_CODES, "code": "resulting-activity"}]},
                        "valueReference": {"reference": "Procedure/proc-6001"},
                    }
                ]
        clock += timedelta(minutes=draw(st.integers(1, 3000)))
        saved = stored(current, version=len(changes) + 1, at=clock)
        user = draw(st.sampled_from([CBO_USER, None]))
        who = provenance(saved, who=user or CBO, on_behalf_of=CBO if user else None)
        changes.append(TaskChange(saved, who if draw(st.booleans()) else None))
    return changes, clock


@st.composite
def service_requests(draw: st.DrawFn) -> Resource | None:
    if draw(st.integers(0, 5)) == 0:
        return None
    request = service_request()
    if draw(st.booleans()):
        request = prohibit_contact(request)
    if draw(st.booleans()):
        request["category"] = request["category"][:1]  # no SDOH category slice
    if draw(st.booleans()):
        request["reasonCode"] = [{"text": "Lost job"}]
    if draw(st.booleans()):
        del request["code"]["text"]
    return request


@st.composite
def cases(draw: st.DrawFn, *, open_only: bool) -> Case:
    changes, clock = draw(histories(open_only=open_only))
    other_patient = consent() | {"patient": {"reference": "Patient/other"}}
    maybe = st.booleans()
    record = ReferralRecord(
        task=changes[-1].task,
        service_request=draw(service_requests()),
        patient=patient() if draw(maybe) else None,
        consents=draw(
            st.sampled_from(
                [[], [consent()], [consent() | {"status": "inactive"}], [other_patient]]
            )
        ),
        reasons=[condition()] if draw(maybe) else [],
        requester_role=requester_role() if draw(maybe) else None,
        requester_practitioner=requester_practitioner() if draw(maybe) else None,
        requester_organization=requester_organization() if draw(maybe) else None,
        history=changes,
    )
    policy = DisclosurePolicy(
        consent_required=draw(maybe),
        respond_within_hours=draw(st.none() | st.integers(1, 96)),
        close_within_days=draw(st.none() | st.integers(1, 90)),
    )
    return Case(record=record, policy=policy, clock=clock)


_REASONED: dict[str, tuple[type[DeclineAction | HoldAction | FailAction | CancelAction], Any]] = {
    "decline": (DeclineAction, DeclineReason),
    "hold": (HoldAction, HoldReason),
    "fail": (FailAction, FailReason),
    "cancel": (CancelAction, CancelReason),
}
_PLAIN: dict[str, type[AcceptAction | StartAction | ResumeAction]] = {
    "accept": AcceptAction,
    "start": StartAction,
    "resume": ResumeAction,
}


@st.composite
def actions(draw: st.DrawFn, record: ReferralRecord, *, now: datetime) -> ReferralAction:
    name = draw(st.sampled_from(allowed_actions(record.task["status"])))
    if name == "message":
        return MessageAction(text=draw(TEXTS))
    if name in _REASONED:
        model, codes = _REASONED[name]
        reason = draw(st.sampled_from(get_args(codes)))
        text = draw(TEXTS if reason == "other" else st.none() | TEXTS)
        return model(reason=reason, text=text)
    if name == "complete":
        outcome = draw(st.sampled_from(get_args(OutcomeCode)))
        coded_request = record.service_request is not None
        service = draw((st.none() if coded_request else st.nothing()) | st.sampled_from(SERVICES))
        performed = draw(
            st.none()
            | st.dates(min_value=EARLIEST.date(), max_value=now.date())
            | st.datetimes(
                min_value=EARLIEST, max_value=now.replace(tzinfo=None), timezones=st.just(UTC)
            )
        )
        note = draw(TEXTS if outcome == "other" else st.none() | TEXTS)
        return CompleteAction(outcome=outcome, service=service, performed=performed, note=note)
    return _PLAIN[name]()


# -- expectations ----------------------------------------------------------------------------

_ALWAYS = {"version", "updated"}
_MOVE = _ALWAYS | {"status", "status_reason", "timeline", "allowed_actions"}
_DUE_CHANGES = {"accept", "decline", "complete", "fail", "cancel"}


def _action_name(action: ReferralAction) -> str:
    return type(action).__name__.removesuffix("Action").lower()


def _changing_fields(action: ReferralAction) -> set[str]:
    name = _action_name(action)
    if name == "message":
        return _ALWAYS | {"messages"}
    fields = _MOVE | ({"due"} if name in _DUE_CHANGES else set())
    if name == "complete":
        fields |= {"business_status", "outcome", "messages"}
    return fields


def _expected_reason(action: ReferralAction) -> StatusReasonView | None:
    if isinstance(action, DeclineAction | HoldAction | FailAction | CancelAction):
        return StatusReasonView(code=action.reason, text=action.text or display_of(action.reason))
    return None


def _expected_due(before: ReferralView, case: Case, action: ReferralAction, at: datetime) -> Any:
    target = TARGET_STATUS.get(_action_name(action))
    if target in TERMINAL_STATUSES:
        return None
    deadline = case.record.task.get("restriction", {}).get("period", {}).get("end")
    if target == "accepted":
        if deadline:
            return deadline
        days = case.policy.close_within_days
        return (at + timedelta(days=days)).isoformat() if days is not None else None
    return before.due


def _expected_activity(before: ReferralView, action: CompleteAction, at: datetime) -> ActivityView:
    service = action.service
    code = (
        ConceptView(
            system=service.system,
            code=service.code,
            display=service.display,
            text=service.display or service.code,
        )
        if service
        else before.service
    )
    performed = action.performed.isoformat() if action.performed else instant(at)
    return ActivityView(reference=NEW_PROCEDURE, status="completed", code=code, performed=performed)


def check_round_trip(
    before: ReferralView,
    after: ReferralView,
    action: ReferralAction,
    case: Case,
    *,
    at: datetime,
    user: str | None,
) -> None:
    changing = _changing_fields(action)
    for field in ReferralView.model_fields:
        if field not in changing:
            assert getattr(after, field) == getattr(before, field), field
    assert after.version == str(int(before.version or 0) + 1)
    assert after.updated == instant(at)
    author = user or CBO
    new_notes = []
    if isinstance(action, MessageAction):
        new_notes = [action.text]
    elif isinstance(action, CompleteAction) and action.note:
        new_notes = [action.note]
    assert after.messages == before.messages + [
        MessageView(author=author, time=instant(at), text=text) for text in new_notes
    ]
    if isinstance(action, MessageAction):
        return
    target = TARGET_STATUS[_action_name(action)]
    assert after.status == target
    assert after.status_reason == _expected_reason(action)
    assert after.allowed_actions == allowed_actions(target)
    assert after.due == _expected_due(before, case, action, at)
    assert after.timeline == [
        *before.timeline,
        StatusChange(
            from_status=before.status,
            to_status=after.status,
            time=instant(at),
            version=after.version,
            reason=after.status_reason,
            who=author,
            on_behalf_of=CBO if user else None,
        ),
    ]
    if isinstance(action, CompleteAction):
        assert after.business_status == display_of(action.outcome)
        assert after.outcome is not None
        assert (after.outcome.code, after.outcome.display) == (
            action.outcome,
            display_of(action.outcome),
        )
        assert after.outcome.activities == [_expected_activity(before, action, at)]


def check_task_kept(old: Resource, new: Resource) -> None:
    """The new Task is the old one except in what the owner may edit; notes only grow."""
    assert set(changed_elements(old, new)) <= OWNER_EDITABLE
    for appended in ("note", "output"):
        kept = old.get(appended, [])
        assert new.get(appended, [])[: len(kept)] == kept
    assert new["meta"] == old["meta"]


# -- properties ------------------------------------------------------------------------------


@given(data=st.data(), case=cases(open_only=True))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip__actions_change_only_what_they_mean_to(data, case):
    record = case.record
    clock = case.clock
    for _ in range(data.draw(st.integers(1, 3), label="steps")):
        if not allowed_actions(record.task["status"]):
            break
        clock += timedelta(minutes=data.draw(st.integers(1, 5000), label="wait"))
        action = data.draw(actions(record, now=clock), label="action")
        event(f"{record.task['status']} → {_action_name(action)}")
        user = data.draw(st.sampled_from([CBO_USER, None]), label="user")
        before = referral_view_from_fhir(record, policy=case.policy)

        applied = apply(record, action, at=clock, user=user)
        after = referral_view_from_fhir(applied.record, policy=case.policy)

        check_task_kept(applied.old, applied.new)
        check_round_trip(before, after, action, replace(case, record=record), at=clock, user=user)
        record = applied.record


@given(case=cases(open_only=False))
@settings(max_examples=150, deadline=None)
def test_view__minimum_necessary_holds_for_any_record(case):
    result = referral_view_from_fhir(case.record, policy=case.policy)
    dumped = result.model_dump_json()
    request = case.record.service_request or {}
    prohibited = "orderDetail" in request

    assert result.client.contact_prohibited == prohibited
    if prohibited:
        assert (result.client.phone, result.client.email, result.client.address) == (
            None,
            None,
            None,
        )
        assert not [detail for detail in CONTACT_DETAILS if detail in dumped]
    if case.policy.consent_required and not result.consent.covers_disclosure:
        assert result.client.withheld
        assert result.reasons == []
        assert not [detail for detail in CLIENT_DETAILS if detail in dumped]
    if not result.client.withheld and case.record.patient and not prohibited:
        assert result.client.phone == "+1-555-201-4477"
    assert result.consent.covers_disclosure == (case.record.consents == [consent()])
    assert all(change.who is None or "/" in change.who for change in result.timeline)


@given(case=cases(open_only=False))
@settings(max_examples=100, deadline=None)
def test_view__is_valid_json_that_reads_back_the_same(case):
    result = referral_view_from_fhir(case.record, policy=case.policy)

    assert ReferralView.model_validate_json(result.model_dump_json()) == result
    assert [c.to_status for c in result.timeline][-1] == result.status
    assert result.due is None or result.status not in TERMINAL_STATUSES
    if result.status == "completed":
        assert result.outcome is not None


def test_round_trip__strategy_reaches_every_open_status():
    seen: set[str] = set()

    @given(case=cases(open_only=True))
    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    def collect(case):
        seen.add(case.record.task["status"])

    collect()
    assert seen == {"requested", "accepted", "in-progress", "on-hold"}
