#!/usr/bin/env python3
"""HTTP/3 GETs with aioquic, an HTTP/3 stack independent of ferrocast's (quinn + h3).

usage: h3get.py --cafile CERT URL [URL ...]
All URLs go over one QUIC connection to the first URL's host, one after the other. Prints one
JSON object per URL: {"url", "status", "length", "sha256", "alt_svc", "content_encoding"}.
Exits 1 if any response is not 2xx or the connection fails.
"""
import argparse
import asyncio
import hashlib
import json
import sys
from urllib.parse import urlparse

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._http = H3Connection(self._quic)
        self._pending = {}  # stream id -> (future, {"headers": {}, "body": bytearray})

    def quic_event_received(self, event):
        for ev in self._http.handle_event(event):
            entry = self._pending.get(getattr(ev, "stream_id", None))
            if entry is None:
                continue
            fut, st = entry
            if isinstance(ev, HeadersReceived):
                for k, v in ev.headers:
                    st["headers"][k.decode()] = v.decode()
            elif isinstance(ev, DataReceived):
                st["body"] += ev.data
            if getattr(ev, "stream_ended", False):
                del self._pending[ev.stream_id]
                fut.set_result(st)

    async def get(self, authority, path):
        sid = self._quic.get_next_available_stream_id()
        self._http.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"aioquic-interop"),
            ],
            end_stream=True,
        )
        fut = self._loop.create_future()
        self._pending[sid] = (fut, {"headers": {}, "body": bytearray()})
        self.transmit()
        return await fut


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("urls", nargs="+")
    a = ap.parse_args()
    first = urlparse(a.urls[0])
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    cfg.load_verify_locations(a.cafile)
    ok = True
    async with connect(first.hostname, first.port or 443, configuration=cfg, create_protocol=H3Client) as c:
        for url in a.urls:
            u = urlparse(url)
            path = (u.path or "/") + (("?" + u.query) if u.query else "")
            st = await asyncio.wait_for(c.get(u.netloc, path), a.timeout)
            status = int(st["headers"].get(":status", "0"))
            body = bytes(st["body"])
            ok = ok and 200 <= status < 300
            print(json.dumps({
                "url": url,
                "status": status,
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "alt_svc": st["headers"].get("alt-svc"),
                "content_encoding": st["headers"].get("content-encoding"),
            }), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
