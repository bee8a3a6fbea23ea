"""Sending subscription notifications: rest-hook POSTs and the e-mail channel's note."""

from adapters.subscriptions.mail import notification_email
from adapters.subscriptions.rest_hook import RestHookClient

__all__ = ["RestHookClient", "notification_email"]
