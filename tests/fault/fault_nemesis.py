"""The nemesis of the fault test: one fault at a time, chosen by a seeded generator, each healed
before the next.

Kinds:
  kill9       SIGKILL a node, restart it after a moment; then wait for its first catch-up with
              every peer and record what it pulled again (the status route's PulledDuplicates)
  pause       SIGSTOP a node for 2-10 s, then SIGCONT
  link-cut    one direction of one link (the connections X opens to Y) refused or black-holed
  link-delay  the same direction slowed by 100-600 ms per chunk
  clock-skew  restart a node with Node.TestClockOffsetMilliseconds of +-(5..25) s, run a while,
              restart it without (its stamps never go back: docs/architecture.md §5)
"""

import json
import re
import signal
import threading
import time

import http.client

KINDS = ("kill9", "pause", "link-cut", "link-delay", "clock-skew")
REPLICATION_KEY = "I_AM_ONE_OF_YOU"
SKEW_ENV = "LITEDIST_Node__TestClockOffsetMilliseconds"
CATCH_UP_TIMEOUT = 30.0
# core/repl/repl.c logs this when a link loads its stored checkpoints (at start-up).
RESUME_LINE = re.compile(r"\[(?P<db>[^\]]+)\] replication with (?P<peer>\S+) resumes after "
                         r"push checkpoint (?P<push>\d+), pull checkpoint (?P<pull>\d+)")


def repl_status(node, timeout=3.0):
    """GET /api/replication/status of node (parsed), or None when it does not answer."""
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        c.request("GET", "/api/replication/status", headers={"ReplicationApiKey": REPLICATION_KEY})
        r = c.getresponse()
        raw = r.read()
        return json.loads(raw) if r.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        c.close()


class Nemesis(threading.Thread):
    def __init__(self, rng, nodes, links, proxies, stop_event, log, batch_size):
        super().__init__(name="fault-nemesis", daemon=True)
        self.rng, self.nodes, self.links, self.proxies = rng, nodes, links, proxies
        self.stop_event, self.log, self.batch_size = stop_event, log, batch_size
        self.injected = {k: 0 for k in KINDS}
        self.events = []           # (time, text): the fault timeline, kept with the artifacts
        self.repulls = []          # per kill9 and link: {node, db, peer, PulledDuplicates, ...}
        self.resumes = []          # per kill9 and link: {node, db, peer, push_gap, pull_gap}
        self.error = None
        self.busy = threading.Lock()  # held while a fault is in place
        # Held to SIGSTOP a node: the pruner (fault_prune.py) holds it over its read-then-prune
        # of a node, so that a prune is never left queued in a stopped node's socket.
        self.stop_signal = threading.Lock()

    def note(self, text):
        self.events.append((round(time.time(), 3), text))
        self.log(f"nemesis: {text}")

    def _sleep(self, seconds):
        """Sleeps, cut short when the run stops (the fault is healed right after)."""
        self.stop_event.wait(seconds)

    def schedule(self):
        """Every kind once in a seeded order, then seeded picks: each kind is always covered."""
        first = list(KINDS)
        self.rng.shuffle(first)
        yield from first
        while True:
            yield self.rng.choice(KINDS)

    def run(self):
        try:
            self._sleep(1.0)
            for kind in self.schedule():
                if self.stop_event.is_set():
                    break
                with self.busy:
                    getattr(self, "_" + kind.replace("-", "_"))()
                self.injected[kind] += 1
                self._sleep(self.rng.uniform(0.5, 1.5))
        except BaseException as e:  # a harness failure (pytest.fail too): reported by the test
            self.error = repr(e)

    # --- faults ----------------------------------------------------------------------------------

    def _kill9(self):
        n = self.rng.choice(self.nodes)
        before = self._checkpoints(n)
        log_mark = len(n.log_text())
        self.note(f"kill -9 {n.name}")
        n.kill9()
        self._sleep(self.rng.uniform(0.5, 2.0))
        n.start()
        self.note(f"restarted {n.name}")
        self._record_resume(n, before, log_mark)
        self._record_repull(n)

    @staticmethod
    def _checkpoints(n):
        """{(db, peer): (push, pull)} checkpoints of n's links as its status shows them now."""
        st = repl_status(n) or {}
        return {(d["DatabaseName"], p["PeerNodeId"]): (p["LastPushedLocalLogSequence"],
                                                        p["LastPulledPeerLogSequence"])
                for d in st.get("Databases", []) for p in d.get("Peers", [])}

    def _record_resume(self, n, before, log_mark):
        """How far behind the checkpoints a restarted node resumed from (its log says where
        each link resumes) were compared with where they stood just before the kill: that gap
        is what it moves again, and must stay within one batch each way."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        found = {}
        while time.monotonic() < deadline and len(found) < len(before):
            for m in RESUME_LINE.finditer(n.log_text()[log_mark:]):
                found[(m["db"], m["peer"])] = (int(m["push"]), int(m["pull"]))
            if len(found) < len(before):
                time.sleep(0.1)
        for key, (push0, pull0) in sorted(before.items()):
            if key not in found:
                self.resumes.append({"node": n.name, "db": key[0], "peer": key[1],
                                     "error": "no 'resumes after' line in its log"})
                continue
            push1, pull1 = found[key]
            self.resumes.append({"node": n.name, "db": key[0], "peer": key[1],
                                 "push_gap": max(0, push0 - push1),
                                 "pull_gap": max(0, pull0 - pull1)})

    def _record_repull(self, n):
        """Waits until the restarted node finished a cycle with every peer of every database,
        then keeps its counters: what it received since the restart that it already held (in a
        mesh mostly the same missed ops offered by two peers at once; a figure, not a limit)."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while time.monotonic() < deadline:
            st = repl_status(n)
            links = [(d["DatabaseName"], p) for d in (st or {}).get("Databases", [])
                     for p in d.get("Peers", []) if p.get("IsActive")]
            if links and all(p.get("LastSuccessUtc") for _, p in links):
                for db, p in links:
                    self.repulls.append({"node": n.name, "db": db, "peer": p["PeerNodeId"],
                                         "PulledDuplicates": p["PulledDuplicates"],
                                         "PulledOperations": p["PulledOperations"],
                                         "PushedDuplicates": p["PushedDuplicates"]})
                return
            time.sleep(0.2)
        self.repulls.append({"node": n.name, "error": "no full catch-up within "
                                                      f"{CATCH_UP_TIMEOUT:.0f} s"})

    def _pause(self):
        n = self.rng.choice(self.nodes)
        secs = self.rng.uniform(2.0, 10.0)
        self.note(f"SIGSTOP {n.name} for {secs:.1f} s")
        with self.stop_signal:
            n.send_signal(signal.SIGSTOP)
        try:
            self._sleep(secs)
        finally:
            n.send_signal(signal.SIGCONT)
        self.note(f"SIGCONT {n.name}")

    def _link_cut(self):
        src, dst = self.rng.choice(self.links)
        mode = self.rng.choice(("refuse", "drop"))
        secs = self.rng.uniform(2.0, 6.0)
        self.note(f"cut {src}->{dst} ({mode}) for {secs:.1f} s")
        self.proxies.set(src, dst, mode)
        try:
            self._sleep(secs)
        finally:
            self.proxies.set(src, dst, "pass")
        self.note(f"healed {src}->{dst}")

    def _link_delay(self):
        src, dst = self.rng.choice(self.links)
        ms = self.rng.randint(100, 600)
        secs = self.rng.uniform(2.0, 6.0)
        self.note(f"delay {src}->{dst} by {ms} ms for {secs:.1f} s")
        self.proxies.set(src, dst, "delay", ms)
        try:
            self._sleep(secs)
        finally:
            self.proxies.set(src, dst, "pass")
        self.note(f"healed {src}->{dst}")

    def _clock_skew(self):
        n = self.rng.choice(self.nodes)
        offset = self.rng.choice((-1, 1)) * self.rng.randint(5000, 25000)
        self.note(f"restart {n.name} with its clock {offset:+d} ms off")
        n.extra_env[SKEW_ENV] = str(offset)
        try:
            n.restart()
            self._sleep(self.rng.uniform(3.0, 6.0))
        finally:
            n.extra_env.pop(SKEW_ENV, None)
            n.restart()
        self.note(f"{n.name} back on the real clock")

    def heal_all(self):
        """Everything back to normal: links pass, paused nodes continue, stopped ones start,
        skewed ones restart on the real clock."""
        self.proxies.heal_all()
        for n in self.nodes:
            n.send_signal(signal.SIGCONT)
            if SKEW_ENV in n.extra_env:
                n.extra_env.pop(SKEW_ENV, None)
                n.restart()
            elif not n.running():
                n.start()
