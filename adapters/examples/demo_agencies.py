"""The demo world's agencies and the records their own systems hold, served through the adapter SDK.

Each agency's store here is a small table of sample records keyed by national number; the adapter
answers from it exactly as it would from the agency's database.
"""

from __future__ import annotations

from typing import Any

from adapters.server import Adapter, RecordRequest, UnknownSubject

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


def build_adapter(agency: str, adapter: Adapter) -> Adapter:
    """Register a handler per category the agency holds, answering from its own records."""
    for category, records in AGENCIES[agency]["holds"].items():
        adapter.category(category)(_answer_from(records))
    return adapter


def _answer_from(records: dict[str, dict[str, Any]]) -> Any:
    async def answer(request: RecordRequest) -> dict[str, Any]:
        record = records.get(request.subject)
        if record is None:
            raise UnknownSubject(request.subject)
        return dict(record)

    return answer
