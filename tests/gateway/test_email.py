"""E-mail to CBO staff, end to end: a hospital's referral becomes an e-mail on a real SMTP
server (aiosmtpd on a loopback port), whose links open a confirmation page and act only on
POST, once; reminders for overdue referrals go out once, whoever scans for them and however
often.

Only the outside world is faked (the mail server); the database and the app are real.
"""

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine

from conformance.fhir_time import format_instant
from gateway.app import create_app
from gateway.email import EMAIL_KIND, LinkClaims, OverdueReminders
from gateway.fhir.write_context import now_us
from gateway.outbox import MessageSummary, list_messages, message_attempts
from gateway.settings import Settings
from gateway.store.engine import read_transaction
from tests import builders
from tests.adapters.smtp_server import MailServer
from tests.builders import CBO, HOSPITAL, OTHER_CBO, as_org, service_request, task
from tests.conftest import BASE_URL, store_signing_key
from tests.partners import API, CBO_KEY, key_headers, provision_partners
from tests.tokens import mint

INTAKE = "intake@eastside-food.test"
DIRECTOR = "director@eastside-food.test"
SENDER = "Loopgate referrals <referrals@loopgate.test>"
REASON_SYSTEM = "urn:loopgate:codesystem:referral-reason"
LINK = re.compile(r"https?://\S+/email-actions/[A-Za-z0-9_\-.]+")
PHI = ("Rivera", "Denise", "1986-03-14", "MRN-0048213", "pat-1001")
"""The patient's names, birth date, record number and id (tests/builders.py)."""
SAME_SITE = {"Origin": BASE_URL}


def with_email(settings: Settings, port: int, **changes: Any) -> Settings:
    """Settings with e-mail on (through the test's mail server) and a fast outbox."""
    values = {
        **settings.model_dump(),
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_from": SENDER,
        "outbox_poll_interval_s": 0.05,
        "outbox_retry_base_s": 0.05,
        "outbox_retry_cap_s": 0.3,
        "email_overdue_scan_s": 0,
        **changes,
    }
    return Settings.model_validate(values)


@contextmanager
def running_app(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], **policy: Any
) -> Iterator[TestClient]:
    """The app with the food bank provisioned to get e-mail at INTAKE and DIRECTOR."""
    store_signing_key(engine, signing_key)
    with TestClient(create_app(settings, engine=engine), base_url=BASE_URL) as client:
        builders.TOKENS[HOSPITAL] = mint(engine, organization=HOSPITAL)
        provision_partners(
            client,
            {
                "organization": CBO,
                "api_keys": [CBO_KEY],
                "emails": [INTAKE, DIRECTOR],
                "policy": policy,
            },
            {"organization": OTHER_CBO},
        )
        try:
            yield client
        finally:
            builders.TOKENS.clear()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], mail: MailServer
) -> Iterator[TestClient]:
    """E-mail on, a food bank that answers within 48 hours."""
    with running_app(
        with_email(settings, mail.port), engine, signing_key, respond_within_hours=48
    ) as client:
        yield client


def refer(client: TestClient, task_id: str = "task-1", **overrides: Any) -> None:
    """The hospital refers Denise Rivera to the food bank, authored now unless told."""
    response = client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    assert response.status_code in (200, 201), response.text
    values = {"authoredOn": format_instant(now_us()), **overrides}
    response = client.put(
        f"/fhir/Task/{task_id}", json=task(task_id, **values), headers=as_org(HOSPITAL)
    )
    assert response.status_code == 201, response.text


def api_accept(client: TestClient, task_id: str = "task-1") -> None:
    """The food bank accepts through the JSON API, with its key."""
    response = client.post(f"{API}/referrals/{task_id}/accept", headers=key_headers())
    assert response.status_code == 200, response.text


def fhir(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", headers=as_org(HOSPITAL))
    assert response.status_code == 200, response.text
    return dict(response.json())


def task_status(client: TestClient, task_id: str = "task-1") -> str:
    return str(fhir(client, f"Task/{task_id}")["status"])


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


def links(message: EmailMessage) -> tuple[str, str]:
    """The accept and decline links, as the plain-text part gives them (relative to the app)."""
    text, _ = parts(message)
    accept, decline = LINK.findall(text)
    return accept.removeprefix(BASE_URL), decline.removeprefix(BASE_URL)


def to(address: str) -> Callable[[list[EmailMessage]], bool]:
    return lambda messages: any(m["To"] == address for m in messages)


def addressed(mail: MailServer, address: str, subject: str = "") -> list[EmailMessage]:
    return [m for m in mail.received() if m["To"] == address and subject in str(m["Subject"])]


def email_messages(engine: Engine) -> list[MessageSummary]:
    with read_transaction(engine) as connection:
        return list_messages(connection, now=now_us(), kind=EMAIL_KIND)


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# --- the new-referral e-mail and its links ---------------------------------------------------


def test_done_when__a_new_referral_mails_each_address_without_phi_and_a_link_accepts_once(
    client: TestClient, mail: MailServer
) -> None:
    refer(client)
    mail.wait_for(lambda messages: to(INTAKE)(messages) and to(DIRECTOR)(messages))
    assert len(mail.received()) == 2
    [message] = addressed(mail, INTAKE)

    assert message["From"] == SENDER
    assert message["Subject"].startswith("New referral: Food Insecurity (answer by ")
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    for body in (text, html):
        assert "New referral for Eastside Community Food Bank" in body
        assert "Mercy Hospital" in body
        assert "Assistance with application for food pantry program" in body
        assert "Routine" in body
        assert "Respond by" in body
        assert "task-1" in body
    whole = message.as_string() + text + html
    for detail in PHI:
        assert detail not in whole, f"{detail} must not be in an e-mail"
    accept, decline = links(message)
    assert f'href="{BASE_URL}{accept}"' in html

    # opening the link (as a person or a mail scanner, twice) only shows the confirmation
    for _ in range(2):
        page = client.get(accept)
        assert page.status_code == 200
        assert "Accept this referral?" in page.text
        assert '<form method="post"' in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert not any(detail in page.text for detail in PHI)
    assert task_status(client) == "requested"

    done = client.post(accept, headers=SAME_SITE)
    assert done.status_code == 200, done.text
    assert "Referral accepted" in done.text
    task_now = fhir(client, "Task/task-1")
    assert task_now["status"] == "accepted"
    provenance = fhir(client, "Provenance?target=Task/task-1&_sort=-_lastUpdated")["entry"][0]
    assert provenance["resource"]["target"] == [
        {"reference": f"Task/task-1/_history/{task_now['meta']['versionId']}"}
    ]
    agents = provenance["resource"]["agent"]
    assert agents[0]["who"] == {"reference": CBO}
    assert agents[1]["who"]["identifier"]["value"].startswith("email-link:")

    # the link is used up: again, by its decline twin, or opened later, nothing changes
    for attempt in (client.post(accept, headers=SAME_SITE), client.get(accept)):
        assert attempt.status_code == 410
        assert "already been used" in attempt.text
        assert "accepted" in attempt.text
    twin = client.post(decline, data={"reason": "no-capacity"}, headers=SAME_SITE)
    assert twin.status_code == 410
    # a colleague's e-mail now says someone answered
    colleague_accept, _ = links(addressed(mail, DIRECTOR)[0])
    answered = client.post(colleague_accept, headers=SAME_SITE)
    assert answered.status_code == 409
    assert "already been answered" in answered.text
    history = fhir(client, "Task/task-1/_history")
    assert [entry["resource"]["status"] for entry in history["entry"]] == ["accepted", "requested"]


def test_decline_link__asks_for_a_reason_and_records_it_for_the_hospital(
    client: TestClient, mail: MailServer
) -> None:
    refer(client)
    mail.wait_for(to(INTAKE))
    _, decline = links(addressed(mail, INTAKE)[0])

    page = client.get(decline)
    assert page.status_code == 200
    assert "Decline this referral?" in page.text
    assert '<option value="no-capacity">No capacity</option>' in page.text
    assert '<option value="waitlisted">' not in page.text  # a hold reason, not a decline one

    no_reason = client.post(decline, data={}, headers=SAME_SITE)
    assert no_reason.status_code == 422
    assert "choose a reason" in no_reason.text
    other_without_text = client.post(decline, data={"reason": "other"}, headers=SAME_SITE)
    assert other_without_text.status_code == 422
    assert "short note" in other_without_text.text
    assert '<option value="other" selected>' in other_without_text.text
    assert task_status(client) == "requested"

    done = client.post(
        decline,
        data={"reason": "no-capacity", "text": "Pantry full <until> Monday"},
        headers=SAME_SITE,
    )
    assert done.status_code == 200, done.text
    assert "Referral declined" in done.text
    declined = fhir(client, "Task/task-1")
    assert declined["status"] == "rejected"
    assert declined["statusReason"]["text"] == "Pantry full <until> Monday"
    assert declined["statusReason"]["coding"][0]["system"] == REASON_SYSTEM
    assert declined["statusReason"]["coding"][0]["code"] == "no-capacity"


def test_links__expired_forged_tampered_or_for_another_organization_change_nothing(
    client: TestClient, mail: MailServer
) -> None:
    refer(client)
    mail.wait_for(to(INTAKE))
    accept, _ = links(addressed(mail, INTAKE)[0])
    signer = client.app.state.email_links
    past = int(time.time()) - 1
    expired = signer.url(LinkClaims("link-x", "task-1", CBO, "accept", past))
    for_another = signer.url(LinkClaims("link-y", "task-1", OTHER_CBO, "accept", past + 3600))
    kid, body, signature = accept.rsplit("/", 1)[1].split(".")
    tampered_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    forged = [
        f"/email-actions/{kid}.{tampered_body}.{signature}",
        f"/email-actions/{kid}.{body}.{signature[:-1]}",
        f"/email-actions/k9.{body}.{signature}",
        f"/email-actions/{kid}.{body}.{signature}=",
        "/email-actions/not-a-token",
    ]

    for path in (expired.removeprefix(BASE_URL),):
        assert client.get(path).status_code == 410
        posted = client.post(path, headers=SAME_SITE)
        assert posted.status_code == 410
        assert "expired" in posted.text
    for path in forged:
        assert client.get(path).status_code == 404, path
        posted = client.post(path, headers=SAME_SITE)
        assert posted.status_code == 404, path
        assert "not valid" in posted.text
    other = client.post(for_another.removeprefix(BASE_URL), headers=SAME_SITE)
    assert other.status_code == 404
    assert "no longer with your organization" in other.text
    assert task_status(client) == "requested"
    assert client.get(accept).status_code == 200  # the genuine link still works


def test_post_from_another_site__is_refused_and_changes_nothing(
    client: TestClient, mail: MailServer
) -> None:
    refer(client)
    mail.wait_for(to(INTAKE))
    accept, _ = links(addressed(mail, INTAKE)[0])

    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post(accept, headers=headers)
        assert refused.status_code == 403
        assert "another website" in refused.text
    assert task_status(client) == "requested"
    assert client.post(accept).status_code == 200  # no Origin at all: an older mail client


def test_referral_answered_elsewhere__links_say_so_and_change_nothing(
    client: TestClient, mail: MailServer
) -> None:
    refer(client)
    mail.wait_for(to(INTAKE))
    _, decline = links(addressed(mail, INTAKE)[0])
    api_accept(client)

    page = client.get(decline)
    assert page.status_code == 409
    assert "It is now accepted" in page.text
    posted = client.post(decline, data={"reason": "no-capacity"}, headers=SAME_SITE)
    assert posted.status_code == 409
    assert task_status(client) == "accepted"


# --- delivery: retries, refusals, nothing sent when nothing is left to answer ----------------


def test_mail_server_down__the_mail_arrives_once_it_is_back(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> None:
    mail = MailServer()  # built, not started: connections are refused
    with running_app(with_email(settings, mail.port), engine, signing_key) as client:
        refer(client)
        wait_for(lambda: any(m.attempts >= 2 for m in email_messages(engine)))
        assert {m.last_error for m in email_messages(engine)} == {"connection refused"}
        assert {m.status for m in email_messages(engine)} == {"pending"}

        mail.start()
        try:
            mail.wait_for(lambda messages: to(INTAKE)(messages) and to(DIRECTOR)(messages))
            wait_for(lambda: {m.status for m in email_messages(engine)} == {"delivered"})
        finally:
            mail.stop()
        accept, _ = links(addressed(mail, INTAKE)[0])
        assert client.post(accept, headers=SAME_SITE).status_code == 200
        assert task_status(client) == "accepted"


def test_refused_address__is_dead_at_once_and_the_others_still_get_theirs(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], mail: MailServer
) -> None:
    mail.refuse = {DIRECTOR}
    with running_app(with_email(settings, mail.port), engine, signing_key) as client:
        refer(client)
        mail.wait_for(to(INTAKE))
        wait_for(lambda: {m.status for m in email_messages(engine)} == {"delivered", "dead"})
    [dead] = [m for m in email_messages(engine) if m.status == "dead"]
    assert dead.last_error == "SMTP 550: recipient refused"
    assert dead.attempts == 1
    assert [m["To"] for m in mail.received()] == [INTAKE]


def test_referral_answered_before_the_mail_went__no_mail_is_sent(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> None:
    mail = MailServer()
    with running_app(with_email(settings, mail.port), engine, signing_key) as client:
        refer(client)
        wait_for(lambda: any(m.attempts >= 1 for m in email_messages(engine)))
        api_accept(client)
        mail.start()
        try:
            wait_for(lambda: {m.status for m in email_messages(engine)} == {"delivered"})
        finally:
            mail.stop()
    assert mail.received() == []
    with read_transaction(engine) as connection:
        last = message_attempts(connection, email_messages(engine)[0].id)[-1]
    assert last.error == "not sent: the referral is accepted"


@pytest.fixture
def plain_client(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> Iterator[TestClient]:
    with running_app(settings, engine, signing_key) as client:
        yield client


def test_email_off__no_mail_is_queued_without_an_smtp_host(
    plain_client: TestClient, engine: Engine
) -> None:
    """The default settings (no LOOPGATE_SMTP_HOST): nothing goes on the outbox for e-mail."""
    refer(plain_client)
    assert task_status(plain_client) == "requested"
    assert email_messages(engine) == []


# --- overdue reminders ------------------------------------------------------------------------


def reminders(client: TestClient) -> OverdueReminders:
    found: OverdueReminders = client.app.state.email_reminders
    return found


def test_overdue__one_reminder_per_referral_however_often_and_by_whomever_it_is_scanned(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], mail: MailServer
) -> None:
    long_ago = "2025-03-10T14:06:00-05:00"
    with running_app(
        with_email(settings, mail.port), engine, signing_key, respond_within_hours=24
    ) as client:
        refer(client, "task-1", authoredOn=long_ago)
        refer(client, "task-2")  # authored now: not overdue
        mail.wait_for(lambda messages: len(messages) == 4)  # two new referrals, two addresses

        scan = reminders(client)
        # another process's scanner, racing this one
        other = OverdueReminders(engine, client.app.state.cbo, interval_s=0)
        counts: list[int] = []
        racers = [
            threading.Thread(target=lambda s=s: counts.append(s.scan())) for s in (scan, other)
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(counts) == [0, 1]
        assert scan.scan() == 0
        client.app.state.outbox.wake()

        mail.wait_for(lambda messages: len(messages) == 6)
        subject = "Reminder: referral waiting for your answer"
        for address in (INTAKE, DIRECTOR):
            [reminder] = addressed(mail, address, subject)
            text, _ = parts(reminder)
            assert "task-1" in text
            assert not any(detail in reminder.as_string() for detail in PHI)
        # its links work like the first e-mail's
        accept, _ = links(addressed(mail, INTAKE, subject)[0])
        assert client.post(accept, headers=SAME_SITE).status_code == 200
        assert task_status(client) == "accepted"
        assert scan.scan() == 0


def test_overdue__the_background_scan_reminds_once(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], mail: MailServer
) -> None:
    fast_scan = with_email(settings, mail.port, email_overdue_scan_s=0.05)
    with running_app(fast_scan, engine, signing_key, respond_within_hours=24) as client:
        refer(client, authoredOn="2025-03-10T14:06:00-05:00")
        scan = reminders(client)
        mail.wait_for(lambda messages: len(addressed(mail, INTAKE, "Reminder")) == 1)
        seen = scan.scans
        wait_for(lambda: scan.scans >= seen + 3)
        wait_for(lambda: {m.status for m in email_messages(engine)} == {"delivered"})
    assert len(addressed(mail, INTAKE, "Reminder")) == 1
    assert len(addressed(mail, DIRECTOR, "Reminder")) == 1


def test_overdue__an_accepted_referral_past_its_close_by_gets_a_reminder_without_links(
    settings: Settings, engine: Engine, signing_key: dict[str, Any], mail: MailServer
) -> None:
    with running_app(
        with_email(settings, mail.port), engine, signing_key, close_within_days=3
    ) as client:
        refer(client)
        api_accept(client)
        scan = reminders(client)
        assert scan.scan() == 0  # accepted just now
        in_four_days = now_us() + int(timedelta(days=4).total_seconds() * 1_000_000)
        assert scan.scan(now=in_four_days) == 1
        assert scan.scan(now=in_four_days) == 0
        client.app.state.outbox.wake()
        mail.wait_for(lambda messages: len(addressed(mail, INTAKE, "close-by")) == 1)
    [reminder] = addressed(mail, INTAKE, "Reminder: referral past its close-by date")
    text, _ = parts(reminder)
    assert "Close by" in text
    assert LINK.findall(text) == []


# --- settings ---------------------------------------------------------------------------------


def test_settings__email_is_off_without_a_host_and_checked_with_one(settings: Settings) -> None:
    assert not settings.email_enabled
    base = settings.model_dump()
    on = Settings.model_validate({**base, "smtp_host": "smtp.example.org", "smtp_from": SENDER})
    assert on.email_enabled
    assert on.smtp_security == "starttls"
    with pytest.raises(ValidationError, match="LOOPGATE_SMTP_FROM"):
        Settings.model_validate({**base, "smtp_host": "smtp.example.org"})
    with pytest.raises(ValidationError, match="in clear"):
        Settings.model_validate(
            {
                **base,
                "smtp_host": "smtp.example.org",
                "smtp_from": SENDER,
                "smtp_security": "none",
                "smtp_username": "loopgate",
            }
        )
    with pytest.raises(ValidationError, match="IANA"):
        Settings.model_validate({**base, "email_time_zone": "Mars/Olympus"})
    assert "hunter2" not in repr(Settings.model_validate({**base, "smtp_password": "hunter2"}))
