"""What aiohttp's HTTP parser refuses before any middleware sees it (a bad chunk size, Content-Length with
Transfer-Encoding, an oversized header, too many headers, an unknown method, a garbage request line): each is
answered as an RFC 9457 problem that never echoes the offending bytes, signed, logged in one line without a
traceback, counted in /metrics and audited like any other refusal before authentication.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from broker.base import logs
from broker.cli.demo import DemoWorld
from tests.hostile.forge import send_raw
from tests.hostile.state import last_seq, records_after

MARK = b"Zq7-echo-me"  # in every refused request: an answer that contains it echoes the request
HEAD = b"Host: hub\r\nConnection: close\r\n"
REFUSED = {
    "a bad chunk size": b"POST /v1/exchanges HTTP/1.1\r\n"
    + HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + MARK
    + b"\r\nabc\r\n0\r\n\r\n",
    "Content-Length with Transfer-Encoding": b"POST /v1/exchanges HTTP/1.1\r\n"
    + HEAD
    + b"Content-Length: 3\r\nTransfer-Encoding: chunked, "
    + MARK
    + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "a 100 KB header": b"GET /v1/policies HTTP/1.1\r\n" + HEAD + b"X-Padding: " + MARK * 10_000 + b"\r\n\r\n",
    "300 headers": b"GET /v1/policies HTTP/1.1\r\n"
    + HEAD
    + b"".join(b"X-" + MARK + b"-%d: 1\r\n" % n for n in range(300))
    + b"\r\n",
    "an unknown method": MARK.upper().replace(b"-", b"") + b" /v1/policies HTTP/1.1\r\n" + HEAD + b"\r\n",
    "a garbage request line": b"\x16\x03\x01 <script>" + MARK + b"</script>\r\n" + HEAD + b"\r\n",
}


def metric(exposition: bytes, name: str) -> dict[str, float]:
    """The samples of one metric family, by their `error` label."""
    [family] = [family for family in text_string_to_metric_families(exposition.decode()) if family.name == name]
    return {sample.labels["error"]: sample.value for sample in family.samples if sample.name.endswith("_total")}


async def test_parser_refusals_are_problems_logged_once_counted_and_audited(
    world: DemoWorld, caplog: pytest.LogCaptureFixture
) -> None:
    hub, seq = world.hub, await last_seq(world.hub)
    stream, previous = io.StringIO(), structlog.get_config()
    logs.configure(stream)
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    try:
        # send_raw reads until the hub closes the connection: it does after each refusal
        answers = {name: await send_raw(hub.config.port, raw) for name, raw in REFUSED.items()}
    finally:
        structlog.configure(**previous)
    for name, answer in answers.items():
        assert (answer.status, answer.problem) == (400, "unparseable-request"), name
        assert MARK.lower() not in answer.body.lower() and b"script" not in answer.body, name
        assert answer.json()["detail"].isascii() and "Signature" in answer.headers, name
    records = await records_after(hub, seq)
    assert [(record["kind"], record["status"], record["reason"]) for record in records] == [
        ("http", 400, "unparseable-request")
    ] * len(REFUSED)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    lines = [line for line in lines if line["event"] != "audit.checkpoint"]  # the sequencer's, whenever it is due
    assert [line["event"] for line in lines] == ["http.unparseable"] * len(REFUSED)
    assert not any("exception" in line for line in lines)
    assert not [record for record in caplog.records if record.name.startswith("aiohttp")]  # no traceback there
    counted = metric(hub.metrics.exposition(), "crossroads_unparseable_requests")
    assert sum(counted.values()) == len(REFUSED) and all(error.isidentifier() for error in counted)
