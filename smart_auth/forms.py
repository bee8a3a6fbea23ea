"""Read form bodies (application/x-www-form-urlencoded) with a size cap, before any parsing.

The cap stops oversized client assertions early (reference/smart.md §5 #17). For OAuth
endpoints RFC 6749 §3.2 also applies: no parameter may appear twice.
"""

from urllib.parse import parse_qsl

from starlette.requests import Request

from smart_auth.oauth import InvalidRequest, OAuthError

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 40


class UnreadableForm(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_pairs(request: Request) -> list[tuple[str, str]]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise UnreadableForm("The request body is too large.", status=413)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise UnreadableForm("Send application/x-www-form-urlencoded parameters.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise UnreadableForm("The request body is too large.", status=413)
    try:
        return parse_qsl(body.decode("utf-8"), max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as error:
        raise UnreadableForm("The form is not valid UTF-8 form encoding.") from error


async def read_form(request: Request) -> dict[str, str]:
    """An OAuth request's parameters; raises RFC 6749 ``invalid_request`` errors."""
    try:
        pairs = await read_pairs(request)
    except UnreadableForm as error:
        raise OAuthError(
            error="invalid_request", description=str(error), status_code=error.status
        ) from error
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(description="A parameter appears twice.")
        form[name] = value
    return form
