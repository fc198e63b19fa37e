"""Alerts to privacy officers, on SQLite and PostgreSQL: a pending review and an anomaly reach a real SMTP server
(aiosmtpd on loopback) as an e-mail digest and a real webhook receiver as JSON whose hub signature it verifies;
two hub processes on one store send each alert once; a failing channel is retried, then recorded as failed; no
subject identifier is in either channel or in the audit records of the alerts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import async_sessionmaker

from adapters.examples.demo_agencies import ANNA, JAN
from broker.audit.anomalies import Finding
from broker.base.signing import Request, SignatureProblem, read_signature_input, verify_request
from broker.cli.demo import FIRE, HUB_KEY_ID, DemoWorld, demo_world, free_port
from broker.config import ConfigError, load_config, shown
from broker.hub import ALERT_SEND_S, open_hub
from broker.notifications.alerts import AlertStore, anomaly_alert
from broker.notifications.digests import digest_text, webhook_body
from tests.agencies import serve

GREY = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
CIVIL = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
SUBJECTS = (ANNA, JAN)
PATH = "/crossroads-alerts"


@dataclass
class Inbox:
    """What the local SMTP server received: each message's raw bytes."""

    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(envelope.content)
        return "250 OK"


@dataclass
class Receiver:
    """What the webhook receiver got: the verified bodies, and how many requests it refused or failed."""

    public_key: Any = None
    failures: int = 0  # answer 503 to this many requests first
    bodies: list[dict[str, Any]] = field(default_factory=list)
    unverified: int = 0
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signature = read_signature_input(request.headers)
            if signature.key_id != HUB_KEY_ID:
                raise SignatureProblem("bad-signature", "not the hub's key")
            verify_request(Request("POST", str(request.url), dict(request.headers)), body, signature, self.public_key)
        except SignatureProblem:
            self.unverified += 1
            return web.Response(status=401)
        if self.refused < self.failures:
            self.refused += 1
            return web.Response(status=503)
        self.bodies.append(json.loads(body))
        return web.Response(status=204)

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for body in self.bodies for alert in body["alerts"]]


@dataclass
class Officers:
    inbox: Inbox
    receiver: Receiver
    settings: dict[str, Any]  # the alert settings of a hub that sends to them


@asynccontextmanager
async def officers(failures: int = 0, smtp: bool = True) -> AsyncIterator[Officers]:
    """A webhook receiver and (unless `smtp` is False: nothing listens on its port) an SMTP server on loopback."""
    inbox, receiver = Inbox(), Receiver(failures=failures)
    async with AsyncExitStack() as stack:
        app = web.Application()
        app.router.add_post(PATH, receiver.handle)
        web_port, smtp_port = free_port(), free_port()
        await serve(stack, app, web_port)
        if smtp:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: SMTP(inbox, hostname="localhost"), "127.0.0.1", smtp_port)
            stack.push_async_callback(server.wait_closed)
            stack.callback(server.close)
        yield Officers(
            inbox,
            receiver,
            {
                "alert_webhook_url": f"http://127.0.0.1:{web_port}{PATH}",
                "alert_smtp_host": "127.0.0.1",
                "alert_smtp_port": smtp_port,
                "alert_email_from": "crossroads@hub.example",
                "alert_email_to": "privacy@agency.example, dpo@agency.example",
            },
        )


@asynccontextmanager
async def alerting_world(
    tmp_path: Path, database_url: str, audience: Officers, **settings: Any
) -> AsyncIterator[DemoWorld]:
    async with demo_world(tmp_path / "state", database_url, **audience.settings, **settings) as world:
        audience.receiver.public_key = world.hub.key.public_key
        yield world


async def until(condition: Callable[[], Awaitable[bool]], rounds: int = 400) -> None:
    """Wait, boundedly, for the alert rounds to get somewhere."""
    for _ in range(rounds):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the alerts did not get there")


async def grey_and_emergency(world: DemoWorld, session: aiohttp.ClientSession) -> tuple[str, str]:
    """A grey-zone review and an emergency access (its review, and its anomaly); the two reviews' ids."""
    grey = await world.client("family-benefits", session).exchange(**GREY)
    _, emergency = await world.client("municipality-leuven", session).call(
        "POST", "/v1/exchanges", {**CIVIL, "emergency": FIRE}
    )
    assert grey.review is not None
    return grey.review, emergency["emergency"]["review"]


def mail_text(raw: bytes) -> str:
    """An e-mail's subject and body, as a reader sees them."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return f"{message['Subject']}\n{message.get_content()}"


def alert_store(world: DemoWorld) -> AlertStore:
    return AlertStore(async_sessionmaker(world.hub.engine, expire_on_commit=False))


async def alert_records(world: DemoWorld, outcome: str) -> list[Any]:
    return await world.hub.audit.records(kind="alert", outcome=outcome)


async def test_officers_hear_of_a_pending_review_and_an_anomaly(
    tmp_path: Path, database_url: str, session: aiohttp.ClientSession
) -> None:
    async with officers() as audience, alerting_world(tmp_path, database_url, audience, alert_interval_s=0.05) as world:
        grey, emergency = await grey_and_emergency(world, session)

        async def heard() -> bool:
            reviews = {alert.get("review") for alert in audience.receiver.alerts()}
            anomalies = {alert.get("anomaly") for alert in audience.receiver.alerts()}
            mailed = "".join(mail_text(raw) for raw in audience.inbox.messages)
            return (
                {grey, emergency} <= reviews
                and "emergency-access" in anomalies
                and all(needle in mailed for needle in (grey, emergency, "emergency-access"))
                and len(await alert_records(world, "delivered")) >= 6
            )

        await until(heard)
        records = await alert_records(world, "delivered")

    assert audience.receiver.unverified == 0
    by_review = {alert["review"]: alert for alert in audience.receiver.alerts() if alert["kind"] == "review-pending"}
    assert set(by_review[grey]) == {
        "kind",
        "review",
        "zone",
        "exchange",
        "requester",
        "category",
        "purpose",
        "rule",
        "at",
        "console",
    }
    assert (by_review[grey]["zone"], by_review[grey]["requester"], by_review[grey]["category"]) == (
        "grey",
        "family-benefits",
        "employment-status",
    )
    assert by_review[grey]["console"] == f"{world.hub.config.url}/console/reviews"
    assert by_review[emergency]["zone"] == "emergency"
    assert by_review[emergency]["console"] == f"{world.hub.config.url}/console/emergencies"
    [anomaly] = [alert for alert in audience.receiver.alerts() if alert["kind"] == "anomaly"]
    assert (anomaly["anomaly"], anomaly["requester"], anomaly["console"]) == (
        "emergency-access",
        "municipality-leuven",
        f"{world.hub.config.url}/console/anomalies",
    )
    mailed = [mail_text(raw) for raw in audience.inbox.messages]
    assert f"{world.hub.config.url}/console/anomalies" in "".join(mailed)
    assert all(b"To: privacy@agency.example, dpo@agency.example" in raw for raw in audience.inbox.messages)
    # Ids and names only: no subject in the webhook's bodies, the e-mails, or the alerts' audit records.
    for subject in SUBJECTS:
        assert subject not in json.dumps(audience.receiver.bodies)
        assert all(
            subject.encode() not in raw and subject not in text
            for raw, text in zip(audience.inbox.messages, mailed, strict=True)
        )
    assert Counter(record.reason.split(":")[0] for record in records) == {"webhook": 3, "email": 3}
    assert all(record.subject is None for record in records)
    assert {record.review_id for record in records} == {grey, emergency, None}


async def test_two_hub_processes_send_each_alert_once(
    tmp_path: Path, database_url: str, session: aiohttp.ClientSession
) -> None:
    # Rounds far apart: the two processes' rounds are run here, at once, on one store.
    async with (
        officers() as audience,
        alerting_world(tmp_path, database_url, audience, alert_interval_s=3600) as world,
        open_hub(world.hub.config) as second,  # a second hub process on the same store
    ):
        grey, emergency = await grey_and_emergency(world, session)
        now = datetime.now(UTC)
        sent = await asyncio.gather(world.hub.alerts.step(now), second.alerts.step(now))
        again = await asyncio.gather(world.hub.alerts.step(now), second.alerts.step(now))
        states = await alert_store(world).states()

    assert sum(sent) == 2 * 3 and again == [0, 0]  # three alerts (two reviews, one anomaly), on two channels
    assert Counter(alert.get("review", alert["kind"]) for alert in audience.receiver.alerts()) == {
        grey: 1,
        emergency: 1,
        "anomaly": 1,
    }
    mailed = "".join(mail_text(raw) for raw in audience.inbox.messages)
    assert mailed.count(f"Review {grey} ") == 1 and mailed.count(f"Review {emergency} ") == 1
    assert Counter((channel, status, attempts) for channel, _, _, status, attempts in states) == {
        ("webhook", "sent", 1): 3,
        ("email", "sent", 1): 3,
    }


async def test_a_failing_channel_is_retried_then_recorded(
    tmp_path: Path, database_url: str, session: aiohttp.ClientSession
) -> None:
    """The webhook answers 503 once, then takes the alert; nothing listens for e-mail, so after its three tries
    the alert is recorded as failed on that channel."""
    async with (
        officers(failures=1, smtp=False) as audience,
        alerting_world(tmp_path, database_url, audience, alert_interval_s=3600, alert_max_attempts=3) as world,
    ):
        grey = await world.client("family-benefits", session).exchange(**GREY)
        start, lease = datetime.now(UTC), timedelta(seconds=ALERT_SEND_S)
        rounds = [await world.hub.alerts.step(start + n * lease) for n in range(5)]
        states = await alert_store(world).states()
        delivered, failed = await alert_records(world, "delivered"), await alert_records(world, "failed")

    assert rounds == [0, 1, 0, 0, 0]  # the webhook's second try went through; e-mail never did
    assert audience.receiver.refused == 1 and [alert["review"] for alert in audience.receiver.alerts()] == [grey.review]
    assert [(channel, status, attempts) for channel, _, _, status, attempts in states] == [
        ("webhook", "sent", 2),
        ("email", "failed", 3),
    ]
    assert [(r.reason, r.review_id, r.status) for r in delivered] == [("webhook: review-pending", grey.review, 200)]
    assert [(r.reason, r.review_id, r.status, r.subject) for r in failed] == [
        ("email: smtp-unreachable", grey.review, 0, None)
    ]


def test_an_anomaly_alert_names_no_subject() -> None:
    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    finding = Finding("repeated-lookup", "tax-authority", ANNA, at, at + timedelta(hours=1), 6, f"{ANNA} x6", (7, 9))
    alert = anomaly_alert(finding)
    assert (alert.kind, alert.reference) == ("anomaly", "repeated-lookup:tax-authority:7")
    assert ANNA not in json.dumps(alert.document)
    assert ANNA.encode() not in webhook_body([alert], "https://hub/console")
    assert ANNA not in digest_text([alert], "https://hub/console")
    assert "https://hub/console/anomalies" in digest_text([alert], "https://hub/console")
    spike = replace(finding, kind="subject-spike", subject=None, records=(12, 3))
    assert anomaly_alert(spike).reference == "subject-spike:tax-authority:2026-11-23"


def test_crossroads_config_masks_the_smtp_password() -> None:
    config, sources = load_config(
        {}, {"CROSSROADS_ALERT_SMTP_PASSWORD": "s3cret", "CROSSROADS_ALERT_SMTP_PORT": "587"}, None
    )
    lines = shown(config, sources)
    assert 'alert_smtp_password = "****"  # CROSSROADS_ALERT_SMTP_PASSWORD' in lines
    assert "alert_smtp_port = 587  # CROSSROADS_ALERT_SMTP_PORT" in lines
    assert not any("s3cret" in line for line in lines)
    with pytest.raises(ConfigError, match="alert_smtp_starttls"):
        load_config({}, {"CROSSROADS_ALERT_SMTP_STARTTLS": "2"}, None)
    with pytest.raises(ConfigError, match="alert_email_to"):
        load_config(
            {}, {"CROSSROADS_ALERT_SMTP_HOST": "smtp.example", "CROSSROADS_ALERT_EMAIL_FROM": "a@b.example"}, None
        )
