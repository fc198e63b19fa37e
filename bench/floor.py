"""The floor of brokering, measured beside the hub (bench/brokering.py, mode `floor`): a proxy on a port of its own
that does only the work no broker can skip, with the hub's own signing code: verify the requester's signature and
digest, sign the forward to the holder's adapter, verify the holder's signed answer, sign the reply bound to the
request. Nothing else: no store, no nonce kept, no policy, consent or audit. Every hub figure of the run is a ratio
to this one, measured on the same load. Run as `python bench/floor.py LAYOUT.json PORT`; prints `ready` once
serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from world import HOLDERS, HUB_KEY_ID, REQUESTERS, Layout, holder_of

from broker.base import eventloop
from broker.base.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    check_created,
    load_private_key,
    read_signature_input,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

JSON = {"Content-Type": "application/json"}


class Floor:
    def __init__(self, layout: Layout, url: str, session: aiohttp.ClientSession) -> None:
        def key(name: str) -> SigningKey:
            return SigningKey(f"{name}-1", load_private_key(layout.key_path(name).read_bytes()))

        signers = {name: key(name) for name in REQUESTERS}
        self._requesters = {signing.key_id: (name, signing.public_key) for name, signing in signers.items()}
        self._holders = {name: key(name) for name in HOLDERS}
        self._hub = SigningKey(HUB_KEY_ID, load_private_key(Path(layout.hub_key_path).read_bytes()))
        self._layout, self._url, self._session = layout, url, session

    async def exchange(self, request: web.Request) -> web.Response:
        body = await request.read()
        target = self._url + request.raw_path
        try:
            signature = read_signature_input(request.headers)
            requester, key = self._requesters[signature.key_id]
            check_created(signature.created, time.time())
            verify_request(Request("POST", target, request.headers), body, signature, key)
        except (SignatureProblem, KeyError):
            return web.Response(status=401)
        asked = json.loads(body)
        holder = holder_of(asked["category"])
        url = self._layout.adapter_url(holder) + "/v1/records"
        exchange = str(uuid.uuid4())
        forward = {"exchange": exchange, "requester": requester, "params": {}}
        forward |= {name: asked[name] for name in ("subject", "category", "purpose")}
        forward_body = json.dumps(forward, separators=(",", ":")).encode()
        headers = sign_request("POST", url, forward_body, self._hub)
        async with self._session.post(url, data=forward_body, headers=headers) as answer:
            raw, status, answer_headers = await answer.read(), answer.status, dict(answer.headers)
        bound = Request("POST", url, {"Content-Digest": headers["Content-Digest"]})
        holder_key = self._holders[holder]
        verify_response(Response(status, answer_headers, bound), raw, holder_key.key_id, holder_key.public_key)
        reply = {"exchange": exchange, "holder": holder, "data": json.loads(raw)["data"]}
        reply_body = json.dumps(reply, separators=(",", ":")).encode()
        asking = Request("POST", target, {"Content-Digest": request.headers["Content-Digest"]})
        signed = sign_response(200, JSON, reply_body, self._hub, asking)
        return web.Response(status=200, body=reply_body, headers=signed)


async def serve(layout: Layout, port: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=20)) as session:
        app = web.Application()
        app.router.add_post("/v1/exchanges", Floor(layout, f"http://127.0.0.1:{port}", session).exchange)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    eventloop.run(serve(Layout.from_json(json.loads(Path(sys.argv[1]).read_text())), int(sys.argv[2])))


if __name__ == "__main__":
    main()
