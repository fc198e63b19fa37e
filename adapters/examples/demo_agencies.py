"""The demo world's agencies, the records their own systems hold, and those systems themselves: the
population register is a SQLite database, the tax authority an export file (CSV), the employment office
a legacy REST service; each is answered through the store adapter of its kind, the others by handlers.
"""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.examples.legacy_rest import legacy_app, serving
from adapters.server import Adapter, RecordRequest, UnknownSubject
from adapters.stores import build_store

ANNA, JAN, SOFIE, PIETER = "85073003328", "90021512345", "78112233344", "66040412399"

AGENCIES: dict[str, dict[str, Any]] = {
    "population-register": {
        "name": "National Population Register",
        "roles": ["social-security"],
        "holds": {
            "civil-status": {
                ANNA: {
                    "name": "Anna Peeters",
                    "birth_date": "1985-07-30",
                    "civil_status": "married",
                    "address": "Bondgenotenlaan 12, 3000 Leuven",
                    "household_size": 4,
                },
                JAN: {
                    "name": "Jan Janssens",
                    "birth_date": "1990-02-15",
                    "civil_status": "single",
                    "address": "Meir 50, 2000 Antwerpen",
                    "household_size": 1,
                },
                SOFIE: {
                    "name": "Sofie Maes",
                    "birth_date": "1978-11-22",
                    "civil_status": "divorced",
                    "address": "Veldstraat 3, 9000 Gent",
                    "household_size": 3,
                },
            }
        },
    },
    "tax-authority": {
        "name": "Federal Tax Authority",
        "roles": ["social-security"],
        "holds": {
            "income": {
                ANNA: {
                    "taxable_income": 41250,
                    "year": 2025,
                    "tax_class": "joint",
                    "employer": "KU Leuven",
                    "withholding": 9120,
                },
                JAN: {
                    "taxable_income": 28900,
                    "year": 2025,
                    "tax_class": "single",
                    "employer": "Port of Antwerp",
                    "withholding": 6010,
                },
                SOFIE: {
                    "taxable_income": 35400,
                    "year": 2025,
                    "tax_class": "single-parent",
                    "employer": "City of Ghent",
                    "withholding": 7200,
                },
            }
        },
    },
    "employment-office": {
        "name": "Regional Employment Office",
        "roles": ["social-security"],
        "holds": {
            "employment-status": {
                ANNA: {"status": "employed", "since": "2019-09-01", "contract": "permanent"},
                JAN: {"status": "job-seeker", "since": "2026-03-01", "contract": None},
            }
        },
    },
    "health-insurance": {
        "name": "Mutual Health Insurance Fund",
        "roles": [],
        "holds": {
            "health-record": {
                ANNA: {"chronic_conditions": ["asthma"], "disability_recognised": False},
            }
        },
    },
    "family-benefits": {
        "name": "Family Benefits Agency",
        "roles": ["social-security"],
        "holds": {
            "child-benefit": {
                ANNA: {"children": 2, "monthly_amount": 342.5},
                SOFIE: {"children": 1, "monthly_amount": 181.0},
            }
        },
    },
    "municipality-leuven": {
        "name": "City of Leuven",
        "roles": [],
        "holds": {},
    },
}

CATEGORIES = {
    "civil-status": "Identity, civil status and address",
    "income": "Taxable income of a tax year",
    "employment-status": "Employment or job-seeking status",
    "health-record": "Health insurance record",
    "child-benefit": "Child benefit entitlement",
    "pension": "Statutory pension entitlement",
}
PURPOSES = {
    "benefit-eligibility": "Deciding on eligibility for a social benefit",
    "job-placement": "Helping a job seeker into work",
    "fraud-investigation": "Investigating suspected social fraud",
    "change-notification": "Being told that a client's data changed",
}
RELATIONSHIPS = [
    ("family-benefits", "beneficiary", [ANNA, JAN, SOFIE, PIETER]),
    ("employment-office", "job-seeker", [JAN, ANNA]),
    ("tax-authority", "taxpayer", [ANNA, JAN, SOFIE]),
    ("municipality-leuven", "resident", [ANNA]),
]


def holdings() -> list[dict[str, Any]]:
    return [
        {"holder": agency, "category": category, "subjects": sorted(records)}
        for agency, spec in AGENCIES.items()
        for category, records in spec["holds"].items()
    ]


def build_adapter(agency: str, adapter: Adapter, systems: LegacySystems | None = None) -> Adapter:
    """Register a handler per category the agency holds: through its legacy system's store adapter where
    `systems` has one for it, else answering from the records above."""
    for category, records in AGENCIES[agency]["holds"].items():
        spec = None if systems is None else systems.stores().get((agency, category))
        if systems is None or spec is None:
            adapter.category(category)(_answer_from(records))
        else:
            adapter.serve(category, build_store(category, spec, systems.directory), spec.get("params"))
    return adapter


def _answer_from(records: dict[str, dict[str, Any]]) -> Any:
    async def answer(request: RecordRequest) -> dict[str, Any]:
        record = records.get(request.subject)
        if record is None:
            raise UnknownSubject(request.subject)
        return dict(record)

    return answer


REGISTER_DB, TAX_EXPORT = "population-register.db", "tax-authority-income.csv"
CITIZEN_COLUMNS = {  # the register's own column names → the answer's
    "full_name": "name",
    "date_of_birth": "birth_date",
    "marital_status": "civil_status",
    "street_address": "address",
    "household_members": "household_size",
}
TAX_COLUMNS = ["niss", "tax_year", "taxable_income", "tax_class", "employer", "withholding"]


@dataclass(frozen=True)
class LegacySystems:
    """Where the demo agencies' own systems are: files in `directory`, and the employment office's service."""

    directory: Path
    employment_url: str

    def stores(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Each system's store entry, exactly as it would appear in an adapter config file."""
        return {
            ("population-register", "civil-status"): {
                "store": "sql",
                "url": f"sqlite+aiosqlite:///{REGISTER_DB}",
                "table": "citizens",
                "key": "national_number",
                "fields": {answer: column for column, answer in CITIZEN_COLUMNS.items()},
            },
            ("tax-authority", "income"): {
                "store": "csv",
                "path": TAX_EXPORT,
                "delimiter": ";",
                "key": "niss",
                "filters": {"year": "tax_year"},
                "params": {
                    "type": "object",
                    "properties": {"year": {"type": "integer", "minimum": 1990, "maximum": 2100}},
                    "additionalProperties": False,
                },
                "fields": {
                    "taxable_income": {"source": "taxable_income", "type": "integer"},
                    "year": {"source": "tax_year", "type": "integer"},
                    "tax_class": "tax_class",
                    "employer": "employer",
                    "withholding": {"source": "withholding", "type": "integer"},
                },
            },
            ("employment-office", "employment-status"): {
                "store": "http",
                "url": self.employment_url + "/api/v2/job-seekers/{subject}",
                "fields": {"status": "situation.code", "since": "situation.since", "contract": "contract.type"},
            },
        }


@asynccontextmanager
async def legacy_systems(directory: Path) -> AsyncIterator[LegacySystems]:
    """Write the register's database and the tax export into `directory` (off the event loop) and run the
    employment office's REST service, all from the records above."""
    await asyncio.to_thread(write_systems, directory)
    employment = AGENCIES["employment-office"]["holds"]["employment-status"]
    async with serving(legacy_app(employment)) as url:
        yield LegacySystems(directory, url)


def write_systems(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / REGISTER_DB
    database.unlink(missing_ok=True)
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "CREATE TABLE citizens (national_number TEXT PRIMARY KEY, full_name TEXT, date_of_birth TEXT, "
            "marital_status TEXT, street_address TEXT, household_members INTEGER)"
        )
        connection.executemany(
            "INSERT INTO citizens VALUES (?, ?, ?, ?, ?, ?)",
            [
                (subject, *(record[answer] for answer in CITIZEN_COLUMNS.values()))
                for subject, record in AGENCIES["population-register"]["holds"]["civil-status"].items()
            ],
        )
    with (directory / TAX_EXPORT).open("w", newline="", encoding="utf-8") as export:
        writer = csv.writer(export, delimiter=";")
        writer.writerow(TAX_COLUMNS)
        for subject, record in AGENCIES["tax-authority"]["holds"]["income"].items():
            writer.writerow(
                [
                    subject,
                    record["year"],
                    record["taxable_income"],
                    record["tax_class"],
                    record["employer"],
                    record["withholding"],
                ]
            )
