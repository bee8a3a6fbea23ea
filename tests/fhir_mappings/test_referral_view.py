import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import get_args

import pytest
from pydantic import ValidationError

from conformance.task_lifecycle import REFERRAL_TASK_STATUSES
from conformance.terminology import CONSENT_STATE, REQUEST_PRIORITY
from fhir_mappings import (
    DisclosurePolicy,
    ReferralRecord,
    ReferralView,
    TaskChange,
    referral_view_from_fhir,
)
from fhir_mappings.reasons import REASON_SYSTEM
from fhir_mappings.view_models import ConsentState, Priority, TaskStatus
from tests.conformance.examples import (
    EHR_BASE,
    GATEWAY_BASE,
    TEMP_CODES,
    consent,
    patient,
    procedure,
    service_request,
    task_completed,
)
from tests.fhir_mappings.referrals import (
    CBO,
    CBO_USER,
    CONSENT_POLICY,
    HOSPITAL,
    OPEN_POLICY,
    SLA_POLICY,
    full_record,
    prohibit_contact,
    provenance,
    task_at,
)

CLIENT_SECRETS = ("+1-555-201-4477", "denise.rivera@example.com", "412 Elm Street", "Springfield")


def view(record: ReferralRecord, policy: DisclosurePolicy = OPEN_POLICY, **kwargs):
    return referral_view_from_fhir(record, policy=policy, **kwargs)


def history_of(*tasks, who=CBO, on_behalf_of=None):
    return [TaskChange(t, provenance(t, who=who, on_behalf_of=on_behalf_of)) for t in tasks]


def test_view__shows_the_referral_the_client_and_the_referrer():
    result = view(full_record())

    assert (result.id, result.version, result.status) == ("task-ref-5001", "1", "requested")
    assert result.priority == "routine"
    assert result.created == "2025-03-10T14:06:00-05:00"
    assert result.updated == "2025-03-10T19:06:00Z"
    assert result.need.model_dump() == {"code": "food-insecurity", "display": "Food Insecurity"}
    assert result.service.code == "467771000124109"
    assert result.service.text == "Help applying to the community food pantry program"
    assert [r.text for r in result.reasons] == ["Food insecurity"]
    assert [c.code for c in result.reasons[0].codes] == ["733423003", "Z59.4"]
    assert result.client.name.text == "Denise M. Rivera"
    assert result.client.birth_date == "1986-03-14"
    assert (result.client.phone, result.client.email) == CLIENT_SECRETS[:2]
    assert result.client.address.lines == ["412 Elm Street", "Apt 3B"]
    assert result.client.address.postal_code == "62704"
    assert result.client.preferred_language.code == "en-US"
    assert not result.client.withheld
    assert not result.client.contact_prohibited
    assert result.allowed_actions == ["accept", "decline", "cancel", "message"]


def test_view__referrer_has_names_role_and_every_way_to_reach_them_once():
    referrer = view(full_record()).referrer

    assert referrer.reference == f"{EHR_BASE}/PractitionerRole/prr-dr-okafor"
    assert referrer.organization == "Mercy Hospital"
    assert referrer.clinician == "Amara Okafor"
    assert referrer.role == "Family physician"
    assert [(c.system, c.value) for c in referrer.contact] == [
        ("phone", "+1-555-100-2000"),
        ("email", "a.okafor@mercy.example.org"),
        ("phone", "+1-555-100-0000"),
    ]


def test_view__referrer_falls_back_to_displays_when_resources_are_missing():
    record = full_record(
        requester_practitioner=None, requester_organization=None, requester_role=None
    )
    referrer = view(record).referrer

    assert referrer.display == "Dr. Amara Okafor, Family Medicine, Mercy Hospital"
    assert (referrer.organization, referrer.clinician, referrer.contact) == (None, None, [])

    role_only = view(replace(record, requester_role=full_record().requester_role)).referrer
    assert (role_only.organization, role_only.clinician) == ("Mercy Hospital", "Dr. Amara Okafor")


def test_view__an_organization_requester_is_the_organization():
    task = task_at(requester={"reference": HOSPITAL, "display": "Mercy Hospital ED"})
    referrer = view(full_record(task, requester_role=None, requester_practitioner=None)).referrer

    assert referrer.organization == "Mercy Hospital"
    assert referrer.clinician is None
    no_org = view(
        full_record(
            task, requester_role=None, requester_practitioner=None, requester_organization=None
        )
    ).referrer
    assert no_org.organization == "Mercy Hospital ED"


# -- minimum necessary ---------------------------------------------------------------------


def test_view__contacting_subject_prohibited_drops_all_contact_data():
    record = full_record(service_request=prohibit_contact(service_request()))

    result = view(record)

    assert result.client.contact_prohibited
    assert (result.client.phone, result.client.email, result.client.address) == (None, None, None)
    assert result.client.name.text == "Denise M. Rivera"
    assert result.client.birth_date == "1986-03-14"
    dumped = result.model_dump_json()
    assert not [secret for secret in CLIENT_SECRETS if secret in dumped]


def test_view__consent_required_and_missing_withholds_every_client_detail():
    note_by_client = {
        "authorReference": {
            "reference": f"{EHR_BASE}/Patient/pat-1001",
            "display": "Denise Rivera",
        },
        "text": "Please call after 3pm",
    }
    note_by_cbo = {"authorReference": {"reference": CBO, "display": "Eastside"}, "text": "Hi"}
    task = task_at(note=[note_by_client, note_by_cbo])
    record = full_record(task, consents=[], history=history_of(task))

    result = view(record, replace(SLA_POLICY, consent_required=True))

    assert result.client.withheld
    assert result.client.withheld_reason == "consent-required"
    assert result.client.model_dump(
        exclude={"withheld", "withheld_reason", "contact_prohibited"}
    ) == {
        "name": None,
        "birth_date": None,
        "phone": None,
        "email": None,
        "address": None,
        "preferred_language": None,
    }
    assert result.reasons == []
    assert result.consent.model_dump() == {
        "state": "none",
        "covers_disclosure": False,
        "required": True,
        "date": None,
        "expires": None,
    }
    assert [(m.author, m.author_display) for m in result.messages] == [
        (None, None),
        (CBO, "Eastside"),
    ]
    # the referral itself stays workable
    assert (result.status, result.need.code, result.service.code) == (
        "requested",
        "food-insecurity",
        "467771000124109",
    )
    assert result.due == "2025-04-10"
    dumped = result.model_dump_json()
    for secret in (*CLIENT_SECRETS, "Denise", "Rivera", "1986-03-14", "Food insecurity"):
        assert secret not in dumped


def test_view__active_consent_covering_the_disclosure_shows_the_client():
    result = view(full_record(), CONSENT_POLICY)

    assert not result.client.withheld
    assert result.client.name.family == "Rivera"
    assert result.consent.model_dump() == {
        "state": "active",
        "covers_disclosure": True,
        "required": True,
        "date": "2025-03-10T14:00:00-05:00",
        "expires": None,
    }


def _consent(**changes):
    resource = consent()
    resource.update(changes)
    return resource


NOW = datetime(2025, 3, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("consents", "state"),
    [
        ([_consent(status="inactive")], "inactive"),
        ([_consent(status="proposed")], "proposed"),
        ([_consent(patient={"reference": "Patient/someone-else"})], "active"),
        ([_consent(category=[{"text": "treatment"}])], "active"),
        ([_consent(provision={"type": "deny"})], "active"),
        ([_consent(provision={"period": {"end": "2025-03-11"}})], "active"),
        ([_consent(provision={"period": {"start": "2025-04-01"}})], "active"),
        ([_consent(provision={"period": {"end": "not-a-date"}})], "active"),
        (
            [
                _consent(
                    provision={
                        "actor": [
                            {
                                "role": {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/"
                                            "v3-ParticipationType",
                                            "code": "IRCP",
                                        }
                                    ]
                                },
                                "reference": {"reference": "Organization/northside-housing"},
                            }
                        ]
                    }
                )
            ],
            "active",
        ),
    ],
    ids=[
        "inactive",
        "proposed",
        "other-patient",
        "not-disclosure",
        "deny",
        "expired",
        "not-yet",
        "bad-period",
        "other-recipient",
    ],
)
def test_view__consent_that_does_not_cover_keeps_details_withheld(consents, state):
    result = view(full_record(consents=consents), CONSENT_POLICY, now=NOW)

    assert result.client.withheld
    assert (result.consent.state, result.consent.covers_disclosure) == (state, False)


def test_view__consent_naming_this_organization_as_recipient_covers():
    recipient = {
        "role": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                }
            ]
        },
        "reference": {"reference": f"{GATEWAY_BASE}/Organization/cbo-eastside-food"},
    }
    witness = {"role": {"text": "witness"}, "reference": {"reference": "Practitioner/x"}}
    provision = {"period": {"end": "2025-06-30"}, "actor": [witness, recipient]}
    record = full_record(consents=[_consent(provision=provision)])

    result = view(record, CONSENT_POLICY, now=NOW)

    assert result.consent.covers_disclosure
    assert result.consent.expires == "2025-06-30"
    assert not result.client.withheld


def test_view__the_covering_consent_is_chosen_among_several():
    old = _consent(status="inactive", dateTime="2025-03-11")
    result = view(full_record(consents=[old, consent()]), CONSENT_POLICY)

    assert (result.consent.state, result.consent.covers_disclosure) == ("active", True)
    newest = view(
        full_record(
            consents=[
                _consent(status="inactive", dateTime="2025-03-11"),
                _consent(status="rejected", dateTime="2025-03-12"),
            ]
        )
    )
    assert newest.consent.state == "rejected"


def test_view__consent_not_required_shows_details_and_says_so():
    result = view(full_record(consents=[]))

    assert not result.client.withheld
    assert (result.consent.state, result.consent.required) == ("none", False)


# -- due dates -------------------------------------------------------------------------------


def _no_deadline(status, version=1, **changes):
    task = task_at(status, version, **changes)
    task.pop("restriction")
    return task


def test_due__requested_is_created_plus_respond_within_hours():
    task = _no_deadline("requested")

    assert view(full_record(task), SLA_POLICY).due == "2025-03-12T14:06:00-05:00"
    assert view(full_record(task), OPEN_POLICY).due is None


def test_due__restriction_period_end_wins_while_open():
    assert view(full_record(task_at("requested")), SLA_POLICY).due == "2025-04-10"


@pytest.mark.parametrize("status", ["accepted", "in-progress", "on-hold"])
def test_due__working_is_accept_time_plus_close_within_days(status):
    requested = _no_deadline("requested", 1)
    accepted = _no_deadline("accepted", 2)
    current = _no_deadline(status, 3, statusReason={"text": "waiting"})
    record = full_record(current, history=history_of(requested, accepted, current))

    assert view(record, SLA_POLICY).due == "2025-04-09T20:06:00+00:00"
    assert view(record, replace(SLA_POLICY, close_within_days=None)).due is None


def test_due__accept_time_falls_back_to_the_first_working_version():
    requested = _no_deadline("requested", 1)
    current = _no_deadline("in-progress", 3)
    record = full_record(current, history=history_of(requested, current))

    assert view(record, SLA_POLICY).due == "2025-04-09T21:06:00+00:00"


@pytest.mark.parametrize(
    "status", ["draft", "completed", "rejected", "cancelled", "failed", "entered-in-error"]
)
def test_due__none_when_closed_or_not_sent(status):
    assert view(full_record(task_at(status)), SLA_POLICY).due is None


def test_due__created_falls_back_to_the_first_version_time():
    task = _no_deadline("requested")
    task.pop("authoredOn")

    result = view(full_record(task), SLA_POLICY)

    assert result.created == "2025-03-10T19:06:00Z"
    assert result.due == "2025-03-12T19:06:00+00:00"


# -- timeline --------------------------------------------------------------------------------


def test_timeline__every_status_change_with_who_made_it():
    requested = task_at("requested", 1)
    accepted = task_at("accepted", 2)
    noted = task_at("accepted", 3, note=[{"text": "called the client"}])
    held = task_at(
        "on-hold",
        4,
        statusReason={
            "coding": [{"system": REASON_SYSTEM, "code": "waitlisted"}],
            "text": "On our waiting list",
        },
    )
    history = [
        TaskChange(
            requested, provenance(requested, who="PractitionerRole/prr", on_behalf_of=HOSPITAL)
        ),
        *history_of(accepted, noted, held, who=CBO_USER, on_behalf_of=CBO),
    ]

    timeline = view(full_record(held, history=history)).timeline

    assert [(c.from_status, c.to_status, c.version) for c in timeline] == [
        (None, "requested", "1"),
        ("requested", "accepted", "2"),
        ("accepted", "on-hold", "4"),
    ]
    assert [(c.who, c.on_behalf_of) for c in timeline] == [
        ("PractitionerRole/prr", HOSPITAL),
        (CBO_USER, CBO),
        (CBO_USER, CBO),
    ]
    assert timeline[2].reason.model_dump() == {"code": "waitlisted", "text": "On our waiting list"}
    assert timeline[1].time == "2025-03-10T20:06:00Z"


def test_timeline__never_names_people_only_references():
    task = task_at()
    named = {
        "agent": [{"who": {"display": "Denise Rivera"}, "onBehalfOf": {"display": "Someone"}}],
        "recorded": "2025-03-10T19:06:00Z",
    }
    timeline = view(full_record(task, history=[TaskChange(task, named)])).timeline

    assert (timeline[0].who, timeline[0].on_behalf_of) == (None, None)


def test_timeline__current_version_missing_from_history_is_added():
    requested, accepted = task_at("requested", 1), task_at("accepted", 2)

    timeline = view(full_record(accepted, history=history_of(requested))).timeline
    assert [(c.to_status, c.who) for c in timeline] == [("requested", CBO), ("accepted", None)]

    only_current = view(full_record(accepted, history=[])).timeline
    assert [(c.from_status, c.to_status) for c in only_current] == [(None, "accepted")]


# -- outcome ---------------------------------------------------------------------------------


def test_outcome__completed_task_shows_the_procedures_delivered():
    task = task_completed()

    result = view(full_record(task, procedures=[procedure()], history=[]))

    assert result.outcome.code is None
    assert (
        result.outcome.display == "Client enrolled in food pantry program; first pickup completed"
    )
    [activity] = result.outcome.activities
    assert activity.reference == "Procedure/proc-6001"
    assert (activity.status, activity.performed) == ("completed", "2025-03-14T10:15:00-05:00")
    assert activity.code.code == "467771000124109"
    assert result.allowed_actions == []


def test_outcome__coded_outcome_code_and_unfetched_procedures():
    task = task_completed()
    task["businessStatus"] = {
        "coding": [{"system": REASON_SYSTEM, "code": "enrolled"}],
        "text": "Enrolled in SNAP",
    }
    task["output"].append(
        {
            "type": {"coding": [{"system": TEMP_CODES, "code": "resulting-activity"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
        }
    )

    outcome = view(full_record(task, procedures=[], history=[])).outcome

    assert (outcome.code, outcome.display) == ("enrolled", "Client enrolled")
    assert outcome.activities[0].reference == "Procedure/proc-6001"
    assert outcome.activities[0].code.text.startswith("Assistance with application")
    assert outcome.activities[1].code.code == "1"


def test_outcome__none_for_open_tasks_without_results():
    assert view(full_record()).outcome is None


# -- reasons and robustness ------------------------------------------------------------------


def test_reasons__observations_reason_codes_and_unfetched_references():
    request = service_request()
    request["reasonReference"] = [
        {"reference": "Observation/obs-1"},
        {"reference": "Condition/not-fetched", "display": "Housing instability"},
        {"reference": "Condition/no-display"},
    ]
    request["reasonCode"] = [{"text": "Lost job"}]
    observation = {
        "resourceType": "Observation",
        "id": "obs-1",
        "code": {"coding": [{"system": "http://loinc.org", "code": "88124-3"}], "text": "HVS"},
        "valueCodeableConcept": {"coding": [{"code": "LA19952-3", "display": "At risk"}]},
    }
    extra = {
        "resourceType": "Observation",
        "id": "obs-2",
        "code": {"text": "Q"},
        "valueBoolean": True,
    }

    reasons = view(full_record(service_request=request, reasons=[observation, extra])).reasons

    assert [(r.text, r.value) for r in reasons] == [
        ("HVS", "At risk"),
        ("Housing instability", None),
        ("Q", "yes"),
        ("Lost job", None),
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"valueQuantity": {"value": 3, "unit": "meals"}}, "3 meals"),
        ({"valueQuantity": {"value": 3}}, "3"),
        ({"valueInteger": 4}, "4"),
        ({"valueString": "often"}, "often"),
        ({}, None),
    ],
)
def test_reasons__observation_values(value, shown):
    request = service_request()
    request["reasonReference"] = [{"reference": "Observation/obs-1"}]
    observation = {"resourceType": "Observation", "id": "obs-1", "code": {"text": "Q"}, **value}

    assert (
        view(full_record(service_request=request, reasons=[observation])).reasons[0].value == shown
    )


def test_view__external_focus_without_anything_fetched_still_works():
    task = {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order"}

    result = view(ReferralRecord(task=task), SLA_POLICY)

    assert (result.id, result.status, result.need, result.service) == (
        "t1",
        "requested",
        None,
        None,
    )
    assert (result.version, result.updated, result.created, result.due) == (None, None, None, None)
    assert result.client.model_dump(exclude_none=True) == {
        "withheld": False,
        "contact_prohibited": False,
    }
    assert result.referrer.model_dump(exclude_none=True) == {"contact": []}
    assert [c.to_status for c in result.timeline] == ["requested"]


def test_view__patient_variants_pick_current_usual_values():
    person = patient()
    person["name"] = [
        {"use": "old", "family": "Smith", "given": ["Denise"]},
        {"text": "Denise Rivera"},
    ]
    person["telecom"] = [
        {"system": "phone", "value": "old-number", "use": "old"},
        {"system": "sms", "value": "sms-number", "rank": 1},
        {"system": "phone", "value": "second", "rank": 2},
        {"system": "phone", "value": "first", "rank": 1},
    ]
    person["address"] = [{"use": "work", "city": "Work"}, {"use": "home", "text": "Home"}]
    person["communication"] = [
        {"language": {"text": "Tagalog"}},
        {"language": {"coding": [{"code": "es"}]}, "preferred": True},
    ]

    client = view(full_record(patient=person)).client

    assert client.name.model_dump() == {"text": "Denise Rivera", "family": None, "given": []}
    assert client.phone == "first"
    assert client.address.text == "Home"
    assert client.preferred_language.model_dump() == {"system": None, "code": "es", "display": "es"}


def test_view__patient_without_usable_name_or_language():
    person = patient()
    person["name"] = [{"use": "old", "family": "Smith"}]
    person["communication"] = [{"language": {}}]
    person["address"] = [{"use": "old", "city": "Gone"}]

    client = view(full_record(patient=person)).client

    assert (client.name, client.preferred_language, client.address) == (None, None, None)


def test_view__priority_and_business_status_fallbacks():
    task = task_at(businessStatus={"coding": [{"code": "x", "display": "Contact attempted"}]})
    task.pop("priority")
    request = service_request()
    request["priority"] = "urgent"

    result = view(full_record(task, service_request=request))

    assert (result.priority, result.business_status) == ("urgent", "Contact attempted")
    request.pop("priority")
    assert view(full_record(task, service_request=request)).priority is None


def test_view__status_reason_shows_code_and_text():
    task = task_at("rejected", statusReason={"text": "At capacity"})

    assert view(full_record(task)).status_reason.model_dump() == {
        "code": None,
        "text": "At capacity",
    }


def test_referral_view__rejects_unknown_fields_and_has_a_json_schema():
    data = view(full_record()).model_dump()
    data["surprise"] = 1

    with pytest.raises(ValidationError):
        ReferralView.model_validate(data)
    schema = ReferralView.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "timeline" in schema["properties"]


def test_view__does_not_mutate_its_input():
    record = full_record()
    before = copy.deepcopy(record)

    view(record, CONSENT_POLICY)

    assert record == before


def test_view__odd_but_legal_pieces_are_tolerated():
    task = task_completed()
    task["note"].append({"authorString": "nobody"})  # a note without text is skipped
    request = service_request()
    del request["code"]
    proc = procedure()
    del proc["performedDateTime"]
    proc["performedPeriod"] = {"start": "2025-03-13"}
    unversioned = {k: v for k, v in task.items() if k != "meta"}

    result = view(
        full_record(
            unversioned,
            service_request=request,
            procedures=[proc],
            history=[TaskChange(unversioned)],
        )
    )

    assert len(result.messages) == 1
    assert result.service is None
    assert result.outcome.activities[0].performed == "2025-03-13"
    assert len(result.timeline) == 1
    proc["performedString"] = "spring"
    del proc["performedPeriod"]
    assert view(full_record(task, procedures=[proc])).outcome.activities[0].performed == "spring"


def test_view_literals__match_the_conformance_vocabulary():
    assert set(get_args(TaskStatus)) == REFERRAL_TASK_STATUSES
    assert set(get_args(Priority)) == REQUEST_PRIORITY
    assert set(get_args(ConsentState)) == CONSENT_STATE | {"none"}
