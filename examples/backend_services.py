#!/usr/bin/env python3
"""Talk to Loopgate as a hospital system: SMART Backend Services, then (optionally) a referral.

Step 1, once: make a key pair and register its public half with Loopgate's operator.

    python examples/backend_services.py --make-key hospital-key.json
    # prints {"keys": [...]}: put it in the provisioning file as the client's "jwks"
    # (or publish it at a URL and register that as "jwks_uri")

Step 2, whenever you need access: sign a client assertion and exchange it for a token.

    python examples/backend_services.py --key hospital-key.json \\
        --client-id hospital-ehr --token-url http://127.0.0.1:8080/auth/token \\
        --scope "system/Patient.cruds system/ServiceRequest.cruds system/Task.cruds" \\
        --create-referral http://127.0.0.1:8080/fhir

Needs only ``pip install httpx joserfc``. Spec:
http://hl7.org/fhir/smart-app-launch/backend-services.html
"""

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare"


def make_key(path: Path) -> RSAKey:
    """A new RSA key for RS384 signatures, saved as a private JWK readable only by you."""
    key = RSAKey.generate_key(
        2048,
        parameters={"kid": uuid.uuid4().hex[:16], "alg": "RS384", "use": "sig"},
        private=True,
    )
    path.write_text(json.dumps(key.as_dict(private=True), indent=2))
    os.chmod(path, 0o600)
    return key


def load_key(path: Path) -> RSAKey:
    return RSAKey.import_key(json.loads(path.read_text()))


def public_jwks(key: RSAKey) -> dict[str, Any]:
    """What Loopgate needs to verify your signatures (never includes the private part)."""
    return {"keys": [key.as_dict(private=False)]}


def client_assertion(key: RSAKey, *, client_id: str, token_url: str) -> str:
    """A signed JWT saying "I am client_id", valid for four minutes and usable once."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 240,  # SMART: no more than five minutes ahead
        "jti": str(uuid.uuid4()),  # a fresh id every time: Loopgate refuses replays
    }
    header = {"alg": "RS384", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=["RS384"])


def get_token(
    http: httpx.Client, *, token_url: str, client_id: str, scope: str, key: RSAKey
) -> dict[str, Any]:
    response = http.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, client_id=client_id, token_url=token_url),
        },
    )
    if response.is_error:
        sys.exit(f"The token request was refused ({response.status_code}): {response.text}")
    return dict(response.json())


def referral_bundle(*, requester: str, owner: str) -> dict[str, Any]:
    """A transaction Bundle: a patient, a food-insecurity ServiceRequest and its Task."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    patient, request = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    food = {
        "system": f"{SDOHCC}/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
        "code": "food-insecurity",
        "display": "Food Insecurity",
    }
    entries: list[tuple[str, dict[str, Any]]] = [
        (
            patient,
            {
                "resourceType": "Patient",
                "name": [{"family": "Rivera", "given": ["Denise"]}],
                "birthDate": "1986-03-14",
            },
        ),
        (
            request,
            {
                "resourceType": "ServiceRequest",
                "meta": {"profile": [f"{SDOHCC}/StructureDefinition/SDOHCC-ServiceRequest"]},
                "status": "active",
                "intent": "order",
                "category": [{"coding": [food]}],
                "code": {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "467771000124109",
                            "display": "Assistance with application for food pantry program",
                        }
                    ]
                },
                "subject": {"reference": patient},
                "authoredOn": now,
                "requester": {"reference": requester},
                "performer": [{"reference": owner}],
            },
        ),
        (
            f"urn:uuid:{uuid.uuid4()}",
            {
                "resourceType": "Task",
                "meta": {
                    "profile": [f"{SDOHCC}/StructureDefinition/SDOHCC-TaskForReferralManagement"]
                },
                "status": "requested",
                "intent": "order",
                "priority": "routine",
                "code": {
                    "coding": [
                        {"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}
                    ]
                },
                "focus": {"reference": request},
                "for": {"reference": patient},
                "authoredOn": now,
                "requester": {"reference": requester},
                "owner": {"reference": owner},
            },
        ),
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for full_url, resource in entries
        ],
    }


def create_referral(
    http: httpx.Client, *, fhir_base: str, access_token: str, requester: str, owner: str
) -> dict[str, Any]:
    response = http.post(
        fhir_base.rstrip("/"),
        json=referral_bundle(requester=requester, owner=owner),
        headers={
            "Authorization": f"Bearer {access_token}",
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        },
    )
    if response.is_error:
        sys.exit(f"The referral was refused ({response.status_code}): {response.text}")
    return dict(response.json())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--make-key", type=Path, metavar="PATH", help="create a key file")
    keys.add_argument("--key", type=Path, metavar="PATH", help="use this key file (a JWK)")
    parser.add_argument("--token-url", help="Loopgate's token endpoint")
    parser.add_argument("--client-id", help="your registered client_id")
    parser.add_argument("--scope", default="system/Task.cruds", help="scopes to ask for")
    parser.add_argument("--create-referral", metavar="FHIR_BASE", help="POST a referral there")
    parser.add_argument(
        "--print-token",
        action="store_true",
        help="print only the access token, for use in shell commands: $(... --print-token)",
    )
    parser.add_argument("--requester", default="Organization/mercy-hospital")
    parser.add_argument("--owner", default="Organization/eastside-food-bank")
    args = parser.parse_args(argv)

    if args.make_key:
        if args.make_key.exists():
            parser.error(f"{args.make_key} exists; use --key to reuse it")
        key = make_key(args.make_key)
        print(f"Saved a new private key to {args.make_key}. Register this JWKS:", file=sys.stderr)
    else:
        key = load_key(args.key)
    if not args.print_token:
        print(json.dumps(public_jwks(key), indent=2))
    if not args.token_url:
        return 0
    if not args.client_id:
        parser.error("--token-url needs --client-id")

    with httpx.Client(timeout=10) as http:
        token = get_token(
            http, token_url=args.token_url, client_id=args.client_id, scope=args.scope, key=key
        )
        if args.print_token:
            print(token["access_token"])
            return 0
        print(
            f"Got a token for scope {token['scope']!r}, valid {token['expires_in']} s.",
            file=sys.stderr,
        )
        if args.create_referral:
            outcome = create_referral(
                http,
                fhir_base=args.create_referral,
                access_token=token["access_token"],
                requester=args.requester,
                owner=args.owner,
            )
            for entry in outcome.get("entry", []):
                print(f"  {entry['response']['status']}  {entry['response'].get('location', '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
