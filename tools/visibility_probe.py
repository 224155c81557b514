#!/usr/bin/env python3
"""Replication visibility probe (the seed's DistributedCacheProbe): writes on node A, polls node B
until each write is visible, and prints p50/p95/p99/max of time-until-visible. Writes documents
(PUT /api/documents/probe/...) by default, cache keys (PUT /api/cache/...?ttl=...) with --cache.

    tools/visibility_probe.py --a http://127.0.0.1:17001 --b http://127.0.0.1:17002 -n 200
    tools/visibility_probe.py --cache --ttl 5m --poll-ms 0.5 -n 500
    tools/visibility_probe.py --a https://10.0.0.1:1446 --b https://10.0.0.2:1446 --cafile ca.pem
        --cert client.pem --cert-key client.key     (mutual TLS: docs/tls.md)

Standard library only. Each write gets a unique token; B is polled with keep-alive requests
every --poll-ms until it returns that token (or --timeout-s passes: counted as lost)."""

import argparse
import http.client
import json
import ssl
import sys
import time
import urllib.parse
import uuid


def tls_context(cafile=None, cert=None, key=None):
    """The client side of https:// nodes: trusting cafile (else the system's CAs), presenting
    cert/key when the node requires a client certificate (Node.Tls.ClientCaFile)."""
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Client:
    def __init__(self, base, db, key, tls=None):
        u = urllib.parse.urlparse(base)
        if u.scheme == "https":
            self.conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=5,
                                                    context=tls or tls_context())
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)
        self.headers = {"Database": db, "ApiKey": key, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):  # one reconnect if the keep-alive connection was closed
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def percentile(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="http://127.0.0.1:17001", help="node written to")
    ap.add_argument("--b", default="http://127.0.0.1:17002", help="node watched")
    ap.add_argument("--db", default="probe")
    ap.add_argument("--key", default="root", help="ApiKey valid on both nodes")
    ap.add_argument("-n", type=int, default=200, help="number of writes")
    ap.add_argument("--poll-ms", type=float, default=0.2, help="poll interval on B")
    ap.add_argument("--timeout-s", type=float, default=5.0, help="give up on one write after")
    ap.add_argument("--cache", action="store_true", help="write cache keys instead of documents")
    ap.add_argument("--ttl", default="5m", help="ttl of the cache keys written (--cache)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--cafile", help="https:// nodes: the CA that signed their certificates")
    ap.add_argument("--cert", help="https:// nodes requiring one: the client certificate (PEM)")
    ap.add_argument("--cert-key", help="the client certificate's private key (PEM)")
    args = ap.parse_args(argv)

    tls = tls_context(args.cafile, args.cert, args.cert_key)
    a, b = Client(args.a, args.db, args.key, tls), Client(args.b, args.db, args.key, tls)

    def seen(answer):  # the token B holds now: a cache GET wraps the value
        value = answer.get("Value") if args.cache else answer
        return value.get("token") if isinstance(value, dict) else None

    samples, lost = [], 0
    for i in range(args.n):
        token = uuid.uuid4().hex
        if args.cache:
            path = f"/api/cache/probe-{i % 50}"
            status, body = a.call("PUT", f"{path}?ttl={urllib.parse.quote(args.ttl)}",
                                  {"token": token})
        else:
            path = f"/api/documents/probe/p{i % 50}"
            status, body = a.call("PUT", path, {"token": token})
        if status != 200:
            print(f"write {i} failed on A: {status} {body[:200]!r}", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        deadline = t0 + args.timeout_s
        while True:
            status, body = b.call("GET", path)
            if status == 200 and seen(json.loads(body)) == token:
                samples.append((time.perf_counter() - t0) * 1000)
                break
            if time.perf_counter() > deadline:
                lost += 1
                break
            time.sleep(args.poll_ms / 1000)
    s = sorted(samples)
    result = {"writes": args.n, "visible": len(s), "lost": lost,
              "p50_ms": percentile(s, 50), "p95_ms": percentile(s, 95),
              "p99_ms": percentile(s, 99), "max_ms": s[-1] if s else float("nan"),
              "poll_ms": args.poll_ms, "kind": "cache" if args.cache else "document"}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(s)}/{args.n} {result['kind']} writes visible on B ({lost} not within {args.timeout_s} s); "
              f"time until visible: p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, "
              f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms "
              f"(poll every {args.poll_ms} ms)")
    return 0 if lost == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
