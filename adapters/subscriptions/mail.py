"""The e-mail of the ``email`` channel: a short note that a subscription has news, with where
to read it. It never carries a resource, a name or any other client detail."""

from email.message import EmailMessage


def notification_email(
    *,
    sender: str,
    recipient: str,
    subscription_url: str,
    kind: str,
    event_number: int | None,
    message_id: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Message-ID"] = message_id
    if kind == "handshake":
        message["Subject"] = "Loopgate: your FHIR subscription is set up"
        text = (
            f"This address will be told of events of the subscription {subscription_url}.\n"
            "If you did not ask for it, ask its owner to set its status to off.\n"
        )
    else:
        message["Subject"] = f"Loopgate: subscription event {event_number}"
        text = (
            f"The subscription {subscription_url} has a new event (number {event_number}).\n"
            f"Read it with GET {subscription_url}/$events?eventsSinceNumber={event_number}"
            f"&eventsUntilNumber={event_number}\n"
        )
    message.set_content(text)
    return message
