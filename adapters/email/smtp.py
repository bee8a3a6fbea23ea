"""One e-mail handed to an SMTP server, and what the server's answer means for the next try.

RFC 5321 §4.2.1: a 4yz reply is transient, a 5yz reply permanent. A recipient or a message
refused with 5yz will be refused again, so that message is dead at once. Everything else is
retried with backoff until the outbox gives up: connections refused or cut, timeouts, TLS
failures, 4yz replies, and a refused sender or login (a setting the operator fixes, after
which the next retry goes through). ``reason`` names a failure by reply code or error class,
never by the server's text, which may echo addresses or content.

``send_email`` blocks; the outbox handler runs it in a thread.
"""

import smtplib
import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from pydantic import SecretStr

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 20.0


@dataclass(frozen=True)
class EmailAttempt:
    """How handing one message to the server went; ``reason`` is short and PHI-free."""

    outcome: Literal["delivered", "retry", "dead"]
    reason: str = ""
    reply_code: int | None = None


def send_email(config: SmtpConfig, message: EmailMessage) -> EmailAttempt:
    """Connect, secure the connection as configured, log in if configured, send ``message``
    to the addresses in its headers, and say what happened."""
    try:
        server = _connect(config)
    except (smtplib.SMTPException, OSError) as error:
        return attempt_for_error(error)
    try:
        if config.security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if config.username:
            password = config.password.get_secret_value() if config.password else ""
            server.login(config.username, password)
        server.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        return attempt_for_error(error)
    finally:
        # the message is the server's once DATA was accepted: a failed QUIT changes nothing
        with suppress(smtplib.SMTPException, OSError):
            server.quit()
        server.close()
    return EmailAttempt("delivered", "", 250)


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    if config.security == "tls":
        return smtplib.SMTP_SSL(
            config.host,
            config.port,
            timeout=config.timeout_s,
            context=ssl.create_default_context(),
        )
    return smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)


def attempt_for_error(error: BaseException) -> EmailAttempt:
    """The most specific meaning of a failure raised by ``smtplib`` or the socket under it."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        code = codes[0] if codes else None
        if codes and all(c >= 500 for c in codes):
            return EmailAttempt("dead", f"SMTP {code}: recipient refused", code)
        return EmailAttempt("retry", f"SMTP {code}: recipient deferred", code)
    if isinstance(error, smtplib.SMTPSenderRefused):
        return EmailAttempt("retry", f"SMTP {error.smtp_code}: sender refused", error.smtp_code)
    if isinstance(error, smtplib.SMTPDataError):
        code = error.smtp_code
        if code >= 500:
            return EmailAttempt("dead", f"SMTP {code}: message refused", code)
        return EmailAttempt("retry", f"SMTP {code}: message deferred", code)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return EmailAttempt("retry", f"SMTP {error.smtp_code}: login refused", error.smtp_code)
    if isinstance(error, smtplib.SMTPConnectError):
        return EmailAttempt("retry", f"SMTP {error.smtp_code}: connection refused", error.smtp_code)
    if isinstance(error, smtplib.SMTPHeloError):
        return EmailAttempt("retry", f"SMTP {error.smtp_code}: greeting refused", error.smtp_code)
    if isinstance(error, smtplib.SMTPResponseException):
        return EmailAttempt("retry", f"SMTP {error.smtp_code}", error.smtp_code)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return EmailAttempt("retry", "server lacks STARTTLS or AUTH")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return EmailAttempt("retry", "server disconnected")
    if isinstance(error, smtplib.SMTPException):
        return EmailAttempt("retry", f"SMTP error: {type(error).__name__}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return EmailAttempt("retry", "TLS certificate not trusted")
    if isinstance(error, ssl.SSLError):
        return EmailAttempt("retry", "TLS error")
    if isinstance(error, TimeoutError):
        return EmailAttempt("retry", "timeout")
    if isinstance(error, ConnectionRefusedError):
        return EmailAttempt("retry", "connection refused")
    if isinstance(error, socket.gaierror):
        return EmailAttempt("retry", "host not found")
    return EmailAttempt("retry", f"network error: {type(error).__name__}")
