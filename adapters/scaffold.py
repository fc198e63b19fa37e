"""`crossroads adapter new NAME`: a ready-to-fill adapter project for an agency: its config, its key pair,
the world-file entry the hub's operator loads, a handler stub to fill in from the agency's own system,
and a test that calls the adapter as the hub will.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from broker.base.keyfiles import write_private_key
from broker.base.signing import load_public_key, public_key_pem

AGENCY_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
SAMPLE_SUBJECT = "00000000097"


@dataclass(frozen=True)
class Project:
    agency: str
    category: str = "civil-status"
    host: str = "127.0.0.1"
    port: int = 8090
    public_url: str = ""  # the URL the hub calls; http://host:port if empty
    hub_key_id: str = "crossroads-hub"
    hub_public_key: Path | None = None  # copied to keys/hub.pub.pem when given

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def key_id(self) -> str:
        return f"{self.agency}-{datetime.now(UTC).year}"


def create(directory: Path, project: Project) -> list[Path]:
    """Write the project into `directory` (which must not exist yet); the files written."""
    if not AGENCY_ID.fullmatch(project.agency):
        raise ValueError("an agency id is 2 to 63 characters of [a-z0-9-], starting with a letter or digit")
    if directory.exists():
        raise FileExistsError(f"{directory} exists; a project is never overwritten")
    keys = directory / "keys"
    keys.mkdir(parents=True)
    key_id = project.key_id
    public = public_key_pem(write_private_key(keys / f"{project.agency}.pem").public_key())
    (keys / f"{project.agency}.pub.pem").write_text(public)
    if project.hub_public_key is not None:
        load_public_key(project.hub_public_key.read_bytes())  # refuse anything but an Ed25519 public key
        shutil.copyfile(project.hub_public_key, keys / "hub.pub.pem")
    files = {
        "adapter.yaml": _config(project, key_id),
        "world-entry.yaml": _world_entry(project, key_id, public),
        "handlers.py": HANDLERS.format(agency=project.agency, subject=SAMPLE_SUBJECT),
        "test_adapter.py": TEST.format(agency=project.agency, category=project.category, subject=SAMPLE_SUBJECT),
        "README.md": README.format(agency=project.agency, category=project.category, url=project.url),
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return sorted(path for path in directory.rglob("*") if path.is_file())


def _config(project: Project, key_id: str) -> str:
    document = {
        "agency": project.agency,
        "key": {"id": key_id, "file": f"keys/{project.agency}.pem"},
        "hub": {"key_id": project.hub_key_id, "public_key_file": "keys/hub.pub.pem"},
        "listen": {"host": project.host, "port": project.port},
        "public_url": project.url,
        "notifications": "handlers:changed",
        "categories": {
            project.category: {
                "store": "python",
                "handler": "handlers:answer",
                "params": {"type": "object", "properties": {}, "additionalProperties": False},
            }
        },
    }
    header = (
        f"# The adapter of {project.agency}: run it with `crossroads adapter run adapter.yaml`.\n"
        "# keys/hub.pub.pem is the hub's public key, from the hub's operator. A category may also be answered\n"
        "# from a database (store: sql), an export file (store: csv) or a REST service (store: http): see\n"
        "# docs/connect-your-agency.md.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)


def _world_entry(project: Project, key_id: str, public: str) -> str:
    document = {
        "agencies": [
            {
                "id": project.agency,
                "name": project.agency.replace("-", " ").title(),
                "adapter_url": project.url,
                "roles": [],
                "keys": [{"key_id": key_id, "public_key_pem": public}],
            }
        ],
        "holdings": [{"holder": project.agency, "category": project.category, "subjects": []}],
    }
    header = (
        "# Send this to the hub's operator, who loads it with `crossroads world load world-entry.yaml`.\n"
        "# It holds the public key only; keys/*.pem without .pub stays with you.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)


HANDLERS = '''"""{agency}'s answers to the hub. Fill in `answer` from your own system: the hub has already checked
who asks, why, and that they may; return the fields of the subject's record, or raise UnknownSubject.
"""

from __future__ import annotations

from typing import Any

from adapters import Notification, RecordRequest, UnknownSubject

# Stands in for your system until `answer` reads it: replace with a query, a file, a call to your service.
RECORDS: dict[str, dict[str, Any]] = {{
    "{subject}": {{"example_field": "example value"}},
}}


async def answer(request: RecordRequest) -> dict[str, Any]:
    """The record of `request.subject` for `request.category` (params in `request.params`)."""
    record = RECORDS.get(request.subject)
    if record is None:
        raise UnknownSubject(request.subject)
    return dict(record)


async def changed(notification: Notification) -> None:
    """The hub says a client's data changed elsewhere (never the data itself); ask again if you need it."""
'''

TEST = '''"""Calls the adapter as the hub will: signed requests, signed answers bound to them. Run: python -m pytest"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adapters.config import read_config
from adapters.testing import stand_in_hub

CONFIG = Path(__file__).parent / "adapter.yaml"


def ask(subject: str, params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    async def run() -> tuple[int, dict[str, Any]]:
        async with stand_in_hub(read_config(CONFIG)) as hub:
            return await hub.records(subject, "{category}", params)

    return asyncio.run(run())


def test_a_known_subject_is_answered() -> None:
    status, answer = ask("{subject}")
    assert status == 200, answer
    assert answer["data"]


def test_an_unknown_subject_is_a_404() -> None:
    status, answer = ask("99999999999")
    assert (status, answer["type"]) == (404, "https://crossroads.example/problems/unknown-subject")


def test_unexpected_params_are_refused() -> None:
    status, answer = ask("{subject}", {{"no-such-param": 1}})
    assert (status, answer["type"]) == (422, "https://crossroads.example/problems/invalid")
'''

README = """# {agency}: a Crossroads adapter

1. Fill in `handlers.py` (`answer`) from your own system, and the test's subject in `test_adapter.py`.
2. `python -m pytest` checks the adapter answers as the hub expects.
3. Send `world-entry.yaml` (your public key and adapter URL {url}) to the hub's operator; get the hub's
   public key back and save it as `keys/hub.pub.pem`.
4. `crossroads adapter run adapter.yaml` serves `{category}` to the hub.

Never send `keys/{agency}.pem`: it is your private key.
"""
