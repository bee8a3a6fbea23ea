"""Standard Webhooks signing and the receiver's check (https://www.standardwebhooks.com/)."""

import base64
import time

import pytest

from adapters.webhooks import (
    WebhookVerificationError,
    new_webhook_secret,
    sign_webhook,
    verify_webhook,
    webhook_headers,
)

# The test vector every Standard Webhooks library checks itself against.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = b'{"type":"referral.created","data":{"id":"task-1"}}'


def test_sign__matches_the_standard_webhooks_test_vector() -> None:
    signature = sign_webhook(
        VECTOR_SECRET, message_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY
    )
    assert signature == VECTOR_SIGNATURE


def test_verify__accepts_the_test_vector_at_its_time() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify_webhook(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


def test_new_secret__is_whsec_and_32_random_bytes() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_verify__accepts_what_we_send_with_any_header_case() -> None:
    secret = new_webhook_secret()
    headers = webhook_headers(secret, message_id="0190-abc", body=BODY)
    verify_webhook(secret, headers, BODY)
    verify_webhook(secret, {name.upper(): value for name, value in headers.items()}, BODY)


def test_verify__accepts_any_of_several_signatures_while_a_secret_rotates() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    headers = webhook_headers(old, message_id="m1", body=BODY, timestamp=int(time.time()))
    rotated = sign_webhook(
        new, message_id="m1", timestamp=int(headers["webhook-timestamp"]), body=BODY
    )
    headers["webhook-signature"] = f"{rotated} {headers['webhook-signature']}"
    verify_webhook(old, headers, BODY)
    verify_webhook(new, headers, BODY)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda h, b, s: (h, b + b" ", s), id="body-changed"),
        pytest.param(lambda h, b, s: (h, b.replace(b"task-1", b"task-2"), s), id="body-edited"),
        pytest.param(lambda h, b, s: (h, b, new_webhook_secret()), id="other-secret"),
        pytest.param(lambda h, b, s: ({**h, "webhook-id": "m2"}, b, s), id="other-id"),
        pytest.param(
            lambda h, b, s: (
                {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)},
                b,
                s,
            ),
            id="timestamp-changed",
        ),
        pytest.param(
            lambda h, b, s: ({**h, "webhook-signature": "v1," + "A" * 44}, b, s), id="garbage"
        ),
        pytest.param(
            lambda h, b, s: ({k: v for k, v in h.items() if k != "webhook-signature"}, b, s),
            id="unsigned",
        ),
        pytest.param(lambda h, b, s: ({**h, "webhook-timestamp": "soon"}, b, s), id="bad-time"),
    ],
)
def test_verify__rejects_forgeries(forge) -> None:
    secret = new_webhook_secret()
    headers = webhook_headers(secret, message_id="m1", body=BODY)
    forged_headers, forged_body, checking_secret = forge(headers, BODY, secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(checking_secret, forged_headers, forged_body)


@pytest.mark.parametrize("age_s", [301, -301, 86_400])
def test_verify__rejects_a_replay_outside_the_tolerance(age_s: int) -> None:
    secret = new_webhook_secret()
    sent_at = int(time.time()) - age_s
    headers = webhook_headers(secret, message_id="m1", body=BODY, timestamp=sent_at)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(secret, headers, BODY)
    verify_webhook(secret, headers, BODY, tolerance=abs(age_s) + 5)


def test_sign__refuses_ids_containing_the_delimiter() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        sign_webhook(new_webhook_secret(), message_id="a.b", timestamp=1, body=BODY)


def test_sign__refuses_a_secret_that_is_not_base64() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        sign_webhook("whsec_not base64!", message_id="m1", timestamp=1, body=BODY)
