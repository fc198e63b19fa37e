"""A batch's file read a window at a time: line numbers kept across blank lines and windows, a line too long
answered alone (its rest skipped, the next line read whole), refs checked."""

from __future__ import annotations

import json
from pathlib import Path

from broker.batches.lines import MAX_LINE, read_window


def test_windows_number_lines_and_answer_bad_ones_alone(tmp_path: Path) -> None:
    ask = {"subject": "85073003328", "category": "income", "purpose": "benefit-eligibility"}
    lines = [
        json.dumps({"ref": "a", **ask}),
        "",
        json.dumps({"ref": "b", **ask, "params": {"note": "x" * (MAX_LINE + 10)}}),
        json.dumps({"ref": True, **ask}),
        json.dumps({"ref": "c", **ask}),
    ]
    path = tmp_path / "batch.ndjson"
    path.write_text("\n".join(lines) + "\n")
    first = read_window(path, 0, 0, 2)
    assert [line.number for line in first.lines] == [1, 3] and first.last == 3
    assert first.lines[0].ref == "a" and first.lines[0].document == ask
    assert first.lines[1].problem is not None and first.lines[1].problem.name == "too-large"
    rest = read_window(path, first.end, first.last, 10)
    assert [(line.number, line.ref) for line in rest.lines] == [(4, None), (5, "c")]
    assert rest.lines[0].problem is not None and "ref" in rest.lines[0].problem.detail
    assert rest.end == path.stat().st_size and read_window(path, rest.end, rest.last, 10).lines == []
