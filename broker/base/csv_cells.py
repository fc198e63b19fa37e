"""CSV cells a person may open in a spreadsheet: text that a spreadsheet would run as a formula is written behind a
single quote (OWASP's CSV injection guidance), and read back as it was by the hub's own readers of its files.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
QUOTE = "'"


def neutralised(text: str) -> str:
    """`text` as a cell no spreadsheet runs. A text starting with the quote itself gets one too, so that
    `restored` gives every text back exactly."""
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def restored(cell: str) -> str:
    """The text that `neutralised` wrote as `cell`."""
    return cell.removeprefix(QUOTE)
