"""The digest of an alert round, as each channel carries it to privacy officers: JSON POSTed to a webhook and
signed by the hub as it signs its requests to adapters (a receiver checks it with the hub's public key), and a
plain-text e-mail over SMTP. Both name ids and names only, with a link to the console page of each alert.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp

from broker.base.signing import SigningKey, sign_request
from broker.notifications.alerts import Alert

PAGES = {"grey": "reviews", "emergency": "emergencies"}  # a pending review's console page, by its zone


def console_page(alert: Alert, console: str) -> str:
    """Where an officer sees the alert's case, people included."""
    if alert.kind == "review-pending":
        return f"{console}/{PAGES.get(alert.document['zone'], 'reviews')}"
    return f"{console}/anomalies"


def webhook_body(alerts: Sequence[Alert], console: str) -> bytes:
    documents = [{**alert.document, "console": console_page(alert, console)} for alert in alerts]
    return json.dumps({"alerts": documents}, separators=(",", ":")).encode()


def digest_text(alerts: Sequence[Alert], console: str) -> str:
    """The e-mail's body: one paragraph an alert."""
    lines = [
        f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} for privacy officers. The people concerned are named "
        "in the console only.",
        "",
    ]
    for alert in alerts:
        lines += [_line(alert.document), f"  {console_page(alert, console)}", ""]
    return "\n".join(lines)


def _line(document: dict[str, Any]) -> str:
    if document["kind"] == "review-pending":
        return (
            f"- Review {document['review']} pending ({document['zone']}): {document['requester']} asked for "
            f"{document['category']} for {document['purpose']} at {document['at']} (exchange {document['exchange']})"
        )
    return (
        f"- Anomaly {document['anomaly']}: {document['requester']}, {document['count']} audit records from "
        f"{document['from']} until {document['until']} (the first is record {document['record']})"
    )


class Webhook:
    """The digest POSTed as hub-signed JSON."""

    name = "webhook"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, key: SigningKey, console: str, timeout_s: float
    ) -> None:
        self._session, self._url, self._key, self._console = session, url, key, console
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, alerts: Sequence[Alert]) -> str | None:
        body = webhook_body(alerts, self._console)
        headers = sign_request("POST", self._url, body, self._key)
        try:
            async with self._session.post(self._url, data=body, headers=headers, timeout=self._timeout) as answer:
                await answer.read()
                return None if 200 <= answer.status < 300 else f"http-{answer.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "unreachable"


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    starttls: bool
    username: str  # no login when empty
    password: str
    sender: str
    recipients: tuple[str, ...]
    timeout_s: float


class Mail:
    """The digest e-mailed over SMTP (the standard library's client, in a thread: it blocks)."""

    name = "email"

    def __init__(self, settings: MailSettings, console: str, hub: str) -> None:
        self._settings, self._console, self._hub = settings, console, hub

    async def send(self, alerts: Sequence[Alert]) -> str | None:
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = ", ".join(self._settings.recipients)
        message["Subject"] = f"Crossroads {self._hub}: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
        message.set_content(digest_text(alerts, self._console))
        return await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> str | None:
        settings = self._settings
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.username:
                    smtp.login(settings.username, settings.password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            return "smtp-login-refused"
        except smtplib.SMTPException:
            return "smtp-refused"
        except OSError:  # refused, unreachable, timed out, TLS failed
            return "smtp-unreachable"
        return None
