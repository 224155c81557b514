"""A WebSocket client that breaks the framing gets the 101 and a close frame, as RFC 6455 7.1.7
asks, and the node serves the next connection. Found by the ws fuzz target
(tests/fuzz/corpus/ws/crash-fragmented-ping): a frame wslay cannot parse used to drop the
connection with nothing sent, not even the 101 already queued."""

import socket
import struct

import pytest

REPL_KEY = "ws-violations-key"
UPGRADE = ("GET /ws/replication HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           f"ReplicationApiKey: {REPL_KEY}\r\n\r\n").encode()


def frame(payload, opcode=1, fin=True, mask=b"\x01\x02\x03\x04", length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def exchange(port, data, timeout=5.0):
    """Sends the upgrade and data, half-closes, returns everything the node sent (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(UPGRADE + data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        for _ in range(1000):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


VIOLATIONS = {
    "fragmented-ping": frame(b"z", opcode=9, fin=False),
    "fragmented-close": frame(struct.pack(">H", 1000), opcode=8, fin=False),
    "ping-over-125": frame(b"p" * 126, opcode=9),
    "length-msb-set": bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 63) + b"\x01\x02\x03\x04",
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_a_framing_violation_is_answered_with_a_close(make_node, name):
    node = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY,
                                         "PeerProbeIntervalSeconds": 0}})
    got = exchange(node.port, VIOLATIONS[name])
    head, sep, frames = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), f"no 101 for {name}: {got[:80]!r}"
    assert sep and frames[:1] == b"\x88", f"no close frame after the 101 for {name}: {frames!r}"
    # The node is up and the next WebSocket works (no close frame with the message: wslay
    # sends a close ahead of queued messages, so the answer would never leave).
    ok = exchange(node.port, frame(b'{"type":"health-check"}'))
    assert b'{"accepted":true' in ok, ok
