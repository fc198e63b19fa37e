"""`crossroads consent`: give, withdraw, refuse, lift and list a subject's consents and refusals.

The commands act on the hub's store (like `crossroads world load`), through the same consent service and
validation as the API, and write each change to the audit log as the operator at the keyboard. What they
record is what every hub process decides on at its next exchange.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker.audit.log import AuditEntry
from broker.base import errors
from broker.cli.acting import change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from consent.matching import Consent, Ending, Refusal
from consent.service import CHANNELS, STAFF_CHANNEL, consent_json, refusal_json


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


def _channel_option(command: Any) -> Any:
    return click.option(
        "--channel",
        type=click.Choice(CHANNELS),
        default=STAFF_CHANNEL,
        show_default=True,
        help="How the person said so.",
    )(command)


def _representative_options(command: Any) -> Any:
    command = click.option("--grantor", default=None, help="A legal representative acting for the subject.")(command)
    return click.option("--mandate", default=None, help="The representative's mandate (required with --grantor).")(
        command
    )


def _document(**values: object) -> dict[str, object]:
    """A request document from the options given; repeated options become lists, absent ones are left out."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in values.items()
        if value not in (None, ())
    }


@click.group()
def consent() -> None:
    """A person's consents and refusals: every change is a new, audited fact."""


@consent.command("give")
@click.option("--subject", required=True)
@click.option("--grantee", required=True, help="The agency id, or * for any agency.")
@click.option("--category", "categories", multiple=True, required=True, help="Repeat for several.")
@click.option("--purpose", "purposes", multiple=True, required=True, help="Repeat for several.")
@click.option("--evidence", required=True, help="A reference to the evidence (form number, document id).")
@click.option("--evidence-sha256", default=None, help="The SHA-256 (hex) of the evidence document.")
@click.option("--notice-version", default=None, help="The version of the privacy notice the person saw.")
@click.option("--valid-from", default=None, help="RFC 3339 with offset; default now.")
@click.option("--valid-until", default=None, help="RFC 3339 with offset; default until withdrawn.")
@_representative_options
@_channel_option
@_options
def give(state_dir: Path, database_url: str, hub_key: Path | None, channel: str, **fields: Any) -> None:
    """Record a consent; prints it as JSON."""
    document = _document(**fields)

    async def work(hub: Hub, entry: AuditEntry) -> Consent:
        given = await hub.consents.give(document, str(entry.requester), entry.at, channel)
        entry.subject, entry.consent_id = given.subject, given.id
        return given

    given = change((state_dir, database_url, hub_key), "consent", work, 201)
    click.echo(json.dumps(consent_json(given, datetime.now(UTC))))


@consent.command("withdraw")
@click.argument("consent_id")
@_channel_option
@_options
def withdraw(consent_id: str, channel: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Withdraw the consent CONSENT_ID, now."""

    async def work(hub: Hub, entry: AuditEntry) -> Consent:
        entry.consent_id = consent_id
        withdrawn = await hub.consents.withdraw(consent_id, Ending(entry.at, str(entry.requester), channel))
        if withdrawn is None:
            raise errors.UnknownConsent(f"no consent {consent_id!r}")
        entry.subject = withdrawn.subject
        return withdrawn

    click.echo(f"withdrawn {change((state_dir, database_url, hub_key), 'consent', work, 200).id}")


@consent.command("refuse")
@click.option("--subject", required=True)
@click.option("--agency", required=True, help="The agency the person refuses to share with.")
@click.option("--category", "categories", multiple=True, help="Repeat for several; none refuses everything.")
@_representative_options
@_channel_option
@_options
def refuse(state_dir: Path, database_url: str, hub_key: Path | None, channel: str, **fields: Any) -> None:
    """Record a refusal; prints it as JSON."""
    document = _document(**fields)

    async def work(hub: Hub, entry: AuditEntry) -> Refusal:
        refused = await hub.consents.refuse(document, str(entry.requester), entry.at, channel)
        entry.subject, entry.consent_id = refused.subject, refused.id
        return refused

    refused = change((state_dir, database_url, hub_key), "consent", work, 201)
    click.echo(json.dumps(refusal_json(refused, datetime.now(UTC))))


@consent.command("lift")
@click.argument("refusal_id")
@_channel_option
@_options
def lift(refusal_id: str, channel: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Lift the refusal REFUSAL_ID, now."""

    async def work(hub: Hub, entry: AuditEntry) -> Refusal:
        entry.consent_id = refusal_id
        lifted = await hub.consents.lift(refusal_id, Ending(entry.at, str(entry.requester), channel))
        if lifted is None:
            raise errors.UnknownRefusal(f"no refusal {refusal_id!r}")
        entry.subject = lifted.subject
        return lifted

    click.echo(f"lifted {change((state_dir, database_url, hub_key), 'consent', work, 200).id}")


@consent.command("list")
@click.argument("subject")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, as GET /v1/subjects/{subject}/consents.")
@_options
def list_records(subject: str, as_json: bool, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """The subject's whole history: every consent and refusal, with its status now."""

    consents, refusals = on_hub((state_dir, database_url, hub_key), lambda hub: hub.consents.history(subject))
    now = datetime.now(UTC)
    if as_json:
        document = {
            "subject": subject,
            "consents": [consent_json(given, now) for given in consents],
            "refusals": [refusal_json(refused, now) for refused in refusals],
        }
        click.echo(json.dumps(document, indent=2))
        return
    for given in consents:
        until = "open" if given.valid_until is None else given.valid_until.isoformat()
        click.echo(
            f"consent {given.id} {given.status(now):<9} → {given.grantee}: {','.join(given.categories)} "
            f"for {','.join(given.purposes)}; {given.valid_from.isoformat()} … {until}; by {given.grantor} "
            f"via {given.channel}"
        )
    for refused in refusals:
        scope = "everything" if refused.categories is None else ",".join(refused.categories)
        click.echo(
            f"refusal {refused.id} {refused.status(now):<9} ✗ {refused.agency}: {scope}; "
            f"since {refused.created_at.isoformat()}; by {refused.grantor} via {refused.channel}"
        )
    if not consents and not refusals:
        click.echo(f"no consents or refusals for {subject}")
