"""The subject access report drawn in each format, from the same header and sections (broker/reports/report.py):
HTML that stands alone (inline style, printable), CSV for a spreadsheet (a `section` column first, one header row,
cells safe from formula injection) and PDF (its tables in the bundled DejaVu font, so any name renders). Pure
functions of the report; a renderer reads its template or fonts from the package once, so call it off the event loop.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import jinja2
from fpdf import FPDF, FontFace

from broker.audit.chain import timestamp
from broker.base.csv_cells import neutralised
from broker.reports.report import HEADER_LABELS, INTRODUCTION, Cell, Named, Section, SubjectReport, header, sections

HERE = Path(__file__).parent
FONT = "DejaVu"  # DejaVu Sans Condensed, bundled (fonts/LICENSE): fpdf2's core fonts write Latin-1 only
TITLE = "Subject access report"
KEEP_WITH_TITLE = 45  # mm a section needs left on its page to start there


def readable(at: datetime) -> str:
    """A time as a person reads it in the report: UTC, to the second."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def html(report: SubjectReport) -> bytes:
    return (
        _templates()
        .get_template("subject_report.html")
        .render(
            title=TITLE,
            introduction=INTRODUCTION,
            header=[(HEADER_LABELS[item], value) for item, value in header(report, readable)],
            sections=sections(report, readable),
        )
        .encode()
    )


@cache
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["cell"] = str
    return environment


def csv_columns(drawn: list[Section]) -> list[str]:
    """The CSV's one header row: `section`, the header's `item` and `value`, then every section's columns in
    order of first use, an agency's column followed by its id's."""
    columns = ["section", "item", "value"]
    for section in drawn:
        for index, column in enumerate(section.columns):
            named = any(isinstance(row[index], Named) for row in section.rows)
            for key in (column.key, f"{column.key}_id") if named else (column.key,):
                if key not in columns:
                    columns.append(key)
    return columns


def csv_bytes(report: SubjectReport) -> bytes:
    drawn = sections(report, timestamp)
    columns = csv_columns(drawn)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)

    def write(values: dict[str, str]) -> None:
        writer.writerow([neutralised(values.get(column, "")) for column in columns])

    for item, value in header(report, timestamp):
        write({"section": "report", "item": item, "value": value})
    for section in drawn:
        for row in section.rows:
            values = {"section": section.key}
            for column, cell in zip(section.columns, row, strict=True):
                values.update(_csv_cell(column.key, cell))
            write(values)
    return out.getvalue().encode()


def _csv_cell(key: str, cell: Cell) -> dict[str, str]:
    if isinstance(cell, Named):
        return {key: cell.name or "", f"{key}_id": cell.id}
    return {key: cell}


class _Document(FPDF):
    """A landscape A4 document whose every page ends with what it is and its page number."""

    def __init__(self, footer: str) -> None:
        super().__init__(orientation="landscape", format="A4")
        self._footer = footer

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.cell(0, 5, f"{self._footer} · page {self.page_no()} of {{nb}}", align="C")


def pdf(report: SubjectReport) -> bytes:
    document = _Document(f"{TITLE}: {report.subject}, generated at {readable(report.generated_at)}")
    document.add_font(FONT, "", HERE / "fonts" / "DejaVuSansCondensed.ttf")
    document.add_font(FONT, "B", HERE / "fonts" / "DejaVuSansCondensed-Bold.ttf")
    document.set_title(f"{TITLE}: {report.subject}")
    document.set_creator("Crossroads")
    document.set_creation_date(report.generated_at)
    document.set_auto_page_break(True, margin=14)
    document.add_page()
    document.set_font(FONT, "B", 16)
    document.cell(text=TITLE, new_x="LMARGIN", new_y="NEXT")
    document.set_font(FONT, "", 9)
    document.multi_cell(0, 4.5, INTRODUCTION, new_x="LMARGIN", new_y="NEXT")
    document.ln(2)
    for item, value in header(report, readable):
        document.set_font(FONT, "B", 9)
        document.cell(45, 5, HEADER_LABELS[item])
        document.set_font(FONT, "", 9)
        document.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    for section in sections(report, readable):
        _pdf_section(document, section)
    return bytes(document.output())


def _pdf_section(document: FPDF, section: Section) -> None:
    if document.will_page_break(KEEP_WITH_TITLE):
        document.add_page()  # a title stays with its explanation and the start of its table
    document.ln(4)
    document.set_font(FONT, "B", 12)
    document.cell(text=section.title, new_x="LMARGIN", new_y="NEXT")
    document.set_font(FONT, "", 8)
    document.multi_cell(0, 4, section.explanation, new_x="LMARGIN", new_y="NEXT")
    document.ln(1)
    if not section.rows:
        document.set_font(FONT, "", 9)
        document.cell(text=section.empty, new_x="LMARGIN", new_y="NEXT")
        return
    document.set_font(FONT, "", 7)
    with document.table(
        col_widths=[column.weight for column in section.columns],
        headings_style=FontFace(emphasis="BOLD", fill_color=(232, 232, 232)),
        line_height=3.4,
        text_align="LEFT",
        v_align="TOP",
        padding=0.8,
    ) as table:
        headings = table.row()
        for column in section.columns:
            headings.cell(column.label)
        for values in section.rows:
            row = table.row()
            for cell in values:
                row.cell(str(cell))


@dataclass(frozen=True)
class Format:
    media_type: str
    charset: str | None  # a text format's
    draw: Callable[[SubjectReport], bytes]


FORMATS = {
    "html": Format("text/html", "utf-8", html),
    "csv": Format("text/csv", "utf-8", csv_bytes),
    "pdf": Format("application/pdf", None, pdf),
}


def render(report: SubjectReport, name: str) -> bytes:
    """The report in the format `name` (a key of FORMATS)."""
    return FORMATS[name].draw(report)
