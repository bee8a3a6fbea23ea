"""``GET``/``POST /email-actions/{token}``: the pages an e-mail's accept and decline links open.

``GET`` only shows: the referral (without client details) and a form to confirm, or why the
link cannot act (forged, expired, used, the referral answered or gone). Mail scanners and
link previews that fetch every link therefore change nothing. Only the form's ``POST`` acts,
through ``CboApi.act`` as the link's organization, so the same workflow rules apply as in the
API. The token in the path is the credential; a ``POST`` sent from another site (its
``Origin`` or ``Sec-Fetch-Site`` says so) is refused, and every page is ``no-store``.
"""

import logging
from datetime import tzinfo
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse

from adapters.cbo.ports import IdempotentRequest
from adapters.email import ReferralSummary, format_when
from conformance.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    ResourceGone,
    ResourceNotFound,
    TransitionNotAllowed,
    VersionConflict,
)
from conformance.fhir_time import from_epoch_us
from fhir_mappings import AcceptAction, DeclineAction, reason_codes
from gateway.email.link_tokens import LinkClaims
from gateway.email.link_uses import CLIENT_PREFIX, link_actor, link_use
from gateway.email.links import ACTION_PATH, EmailLinks
from gateway.email.page_html import (
    STATUS_WORDS,
    Reason,
    accept_form,
    decline_form,
    done_page,
    notice_page,
)
from gateway.email.summaries import referral_summary
from gateway.referrals.cbo_core import CboApi
from gateway.store.engine import read_transaction

log = logging.getLogger("loopgate.email")

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # same-origin keeps the token out of Referer headers elsewhere and still sends this
    # page's Origin with its own form (no-referrer would make it "null")
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def email_action_router(
    *, cbo: CboApi, links: EmailLinks, public_url: str, zone: tzinfo
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    parts = urlsplit(public_url)
    own_origin = f"{parts.scheme}://{parts.netloc}"
    reasons = [Reason(c.code, c.display) for c in reason_codes()[1] if "decline" in c.actions]

    def html(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def refused(problem: str) -> HTMLResponse:
        if problem == "expired":
            return html(
                notice_page(
                    "This link has expired",
                    "Links in referral e-mails work for a limited time, and this one's is up. "
                    "Nothing was changed.",
                    "You can still answer the referral in your referral system.",
                ),
                410,
            )
        return html(
            notice_page(
                "This link is not valid",
                "It may have been cut short or changed on the way. Nothing was changed.",
                "Open the link from the e-mail again, or answer the referral in your "
                "referral system.",
            ),
            404,
        )

    def open_referral(claims: LinkClaims) -> ReferralSummary | HTMLResponse:
        """The referral if the link can still act on it, else the page that says why not."""
        with read_transaction(cbo.engine) as connection:
            used = link_use(connection, claims.link_id)
        if used is not None:
            what = STATUS_WORDS.get(used.status, used.status)
            when = format_when(from_epoch_us(used.used_at), zone)
            return html(
                notice_page(
                    "This link has already been used",
                    f"The referral was {what} with a link from this e-mail on {when}.",
                    "There is nothing more to do here.",
                ),
                410,
            )
        try:
            summary = referral_summary(
                cbo,
                organization=claims.organization,
                referral_id=claims.referral_id,
                client_id=CLIENT_PREFIX + claims.link_id,
            )
        except (ResourceNotFound, ResourceGone, Forbidden):
            return html(
                notice_page(
                    "This referral is no longer with your organization",
                    "The referrer may have withdrawn it or sent it elsewhere. Nothing was changed.",
                ),
                404,
            )
        if summary.status != "requested":
            return html(
                notice_page(
                    "This referral has already been answered",
                    f"It is now {STATUS_WORDS.get(summary.status, summary.status)}. Someone may "
                    "have answered it from another e-mail or from your referral system.",
                    "Nothing was changed.",
                ),
                409,
            )
        return summary

    @router.get(ACTION_PATH + "/{token}")
    async def show(token: str) -> HTMLResponse:
        claims = links.check(token)
        if isinstance(claims, str):
            return refused(claims)
        summary = open_referral(claims)
        if isinstance(summary, HTMLResponse):
            return summary
        form_url = f"{links.base}/{token}"
        if claims.action == "accept":
            return html(accept_form(summary, form_url=form_url, zone=zone))
        return html(decline_form(summary, form_url=form_url, zone=zone, reasons=reasons))

    @router.post(ACTION_PATH + "/{token}")
    async def act(request: Request, token: str) -> HTMLResponse:
        if _from_elsewhere(request, own_origin):
            return html(
                notice_page(
                    "Request refused",
                    "This form was sent from another website. Nothing was changed.",
                    "Open the link from the e-mail again to answer the referral.",
                ),
                403,
            )
        claims = links.check(token)
        if isinstance(claims, str):
            return refused(claims)
        summary = open_referral(claims)
        if isinstance(summary, HTMLResponse):
            return summary
        action: AcceptAction | DeclineAction = AcceptAction()
        if claims.action == "decline":
            form = await request.form()
            chosen, text = _field(form.get("reason")), _field(form.get("text"))
            try:
                action = DeclineAction.model_validate(
                    {"reason": chosen, "text": text.strip() or None}
                )
            except ValidationError:
                problem = (
                    "Please write a short note when the reason is “Other”."
                    if chosen == "other"
                    else "Please choose a reason from the list."
                )
                if len(text) > 1000:
                    problem = "Please keep the note under 1000 characters."
                body = decline_form(
                    summary,
                    form_url=f"{links.base}/{token}",
                    zone=zone,
                    reasons=reasons,
                    chosen=chosen,
                    text=text,
                    error=problem,
                )
                return html(body, 422)
        try:
            cbo.act(
                link_actor(claims),
                claims.referral_id,
                action,
                idempotency=IdempotentRequest(None, "email-link"),
            )
        except (Conflict, TransitionNotAllowed, VersionConflict):
            # used or answered in the meantime: say which, as a fresh GET would
            after = open_referral(claims)
            if isinstance(after, HTMLResponse):
                return after
            return html(
                notice_page(
                    "The referral changed while you were looking at it",
                    "Nothing was changed. Open the link again to see where it stands.",
                ),
                409,
            )
        except (ResourceNotFound, ResourceGone, Forbidden):
            return html(
                notice_page(
                    "This referral is no longer with your organization",
                    "Nothing was changed.",
                ),
                404,
            )
        except GatewayError as error:
            log.warning(
                "e-mail link %s on Task/%s refused (%s)",
                claims.link_id,
                claims.referral_id,
                type(error).__name__,
            )
            return html(
                notice_page(
                    "That did not work",
                    "Nothing was changed. Please answer the referral in your referral system.",
                ),
                error.status,
            )
        status = "accepted" if claims.action == "accept" else "rejected"
        log.info("e-mail link %s: Task/%s %s", claims.link_id, claims.referral_id, status)
        return html(done_page(summary, status=status, zone=zone))

    return router


def _from_elsewhere(request: Request, own_origin: str) -> bool:
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin:
        return True
    return request.headers.get("sec-fetch-site") == "cross-site"


def _field(value: object) -> str:
    return value if isinstance(value, str) else ""
