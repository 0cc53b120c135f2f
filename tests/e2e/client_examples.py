"""The client examples (examples/python, examples/node) run as a user runs
them, as subprocesses, against a real funneld, plain and with CURVE (keys
made by `funnelctl keygen`). The tests are written once here and collected by
test_examples_python.py and test_examples_node.py, each of which defines the
`lang` fixture: the examples of one language.

Every program prints JSON lines on stdout (publish: one per Ack; handoffs:
one per alert; lead: one document) and its diagnostics on stderr; the
tests compare them with what the suite's own clients read from funneld."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (FUNNELCTL_BIN, MARKETING, REPLY_TIMEOUT, SALES, CurveKeys, IngestClient,
                      QueryClient, make_event, now_ms, uid, wait_until)

SRC = os.environ.get("FUNNELD_SOURCE_DIR", "")
# Generous: a program starts an interpreter, runs protoc or loads the proto.
RUN_TIMEOUT = 60.0

PROGRAMS = {
    "python": {"publish": "examples/python/publish.py",
               "handoffs": "examples/python/handoffs.py",
               "lead": "examples/python/lead.py"},
    "node": {"publish": "examples/node/publish.js",
             "handoffs": "examples/node/handoffs.js",
             "lead": "examples/node/lead.js"},
}


def argv(lang, prog, *args):
    path = os.path.join(SRC, PROGRAMS[lang][prog])
    interp = [sys.executable] if lang == "python" else ["node"]
    return interp + [path] + [str(a) for a in args]


class Proc:
    """A running example: its stdout and stderr read line by line by two
    threads, so that a test can await a line with a deadline."""

    def __init__(self, cmd, stdin_text=None):
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = {"out": queue.Queue(), "err": queue.Queue()}
        self.seen = {"out": [], "err": []}
        self.threads = [threading.Thread(target=self._read, args=(f, q), daemon=True)
                        for f, q in ((self.p.stdout, self.lines["out"]),
                                     (self.p.stderr, self.lines["err"]))]
        for t in self.threads:
            t.start()
        if stdin_text is not None:
            self.p.stdin.write(stdin_text)
        self.p.stdin.close()

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line.rstrip("\n"))
        q.put(None)

    def expect(self, stream, pred, timeout=REPLY_TIMEOUT, what="a line"):
        """The next line of stream ("out"/"err") for which pred holds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines[stream].get(timeout=max(left, 0)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail("%s: no %s on std%s within %.1fs; so far: %r / %r" % (
                    " ".join(self.cmd), what, stream, timeout, self.seen["out"],
                    self.seen["err"]))
            self.seen[stream].append(line)
            if pred(line):
                return line

    def poll_line(self, stream, timeout):
        """The next line of stream within timeout, or None."""
        try:
            line = self.lines[stream].get(timeout=timeout)
        except queue.Empty:
            return None
        if line is not None:
            self.seen[stream].append(line)
        return line

    def finish(self, timeout=RUN_TIMEOUT):
        """Wait for the exit; (exit code, stdout lines, stderr text)."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            pytest.fail("%s did not exit within %.0fs" % (" ".join(self.cmd), timeout))
        for t in self.threads:
            t.join(REPLY_TIMEOUT)
        for stream in ("out", "err"):
            while True:
                try:
                    line = self.lines[stream].get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    self.seen[stream].append(line)
        return rc, self.seen["out"], "\n".join(self.seen["err"])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(REPLY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run(cmd, stdin_text=None):
    return Proc(cmd, stdin_text).finish()


def jsonl(lines):
    return [json.loads(x) for x in lines if x.strip()]


def ndjson(events):
    return "".join(json.dumps(e) + "\n" for e in events)


def qualifying(lead, t0):
    """Events that take a lead to a handoff with the built-in definition:
    demo_request + meeting_booked + form_submit (engagement 55 >= 50)."""
    return [{"id": uid("ev"), "lead": lead, "source": "sales", "type": "demo_request",
             "at": t0},
            {"id": uid("ev"), "lead": lead, "source": "sales", "type": "meeting_booked",
             "at": t0 + 1000},
            {"id": uid("ev"), "lead": lead, "source": "marketing", "type": "form_submit",
             "at": t0 + 2000, "attrs": {"industry": "software", "company_size": 120}}]


def pb_events(events):
    """The NDJSON events of qualifying() as the suite's client sends them."""
    return [make_event(e["lead"], e["type"], SALES if e["source"] == "sales" else MARKETING,
                       e["id"], e["at"], {k: str(v) for k, v in e.get("attrs", {}).items()})
            for e in events]


def keygen(tmp_path, name):
    """A key pair written by funnelctl keygen, as a user makes one."""
    base = str(tmp_path / name)
    r = subprocess.run([FUNNELCTL_BIN, "keygen", base], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [x for x in open(base + ".key").read().splitlines() if not x.startswith("# ")]
    return CurveKeys(r.stdout.strip().encode(), lines[0].encode()), base + ".pub", base + ".key"


class Setup:
    """A funneld and how the examples and the suite's clients reach it."""

    def __init__(self, daemon, zctx, key_args=(), curve=None, server=None, tmp_path=None):
        self.d = daemon
        self.zctx = zctx
        self.key_args = list(key_args)
        self.curve = curve
        self.server = server           # (public key file) with CURVE
        self.tmp_path = tmp_path

    def ingest(self):
        return IngestClient(self.zctx, self.d.ingest_ep, self.curve)

    def query(self):
        return QueryClient(self.zctx, self.d.query_ep, self.curve)

    def stats(self):
        q = self.query()
        try:
            return q.stats()
        finally:
            q.close()


@pytest.fixture(params=["plain", "curve"])
def setup(request, daemon_factory, tmp_path, zctx):
    if request.param == "plain":
        return Setup(daemon_factory(), zctx)
    server, server_pub, server_key = keygen(tmp_path, "server")
    crm, _, crm_key = keygen(tmp_path, "crm")
    clients = tmp_path / "clients"
    clients.write_text("# allowed\n%s crm\n" % crm.public.decode())
    d = daemon_factory(curve=(server.public, crm),
                       extra_args=["--curve-secret-file", server_key,
                                   "--curve-clients-file", str(clients)])
    return Setup(d, zctx, ["--server-key", server_pub, "--client-key", crm_key],
                 (server.public, crm), server_pub, tmp_path)


# --------------------------------------------------------------------------
# the tests (collected by test_examples_<lang>.py)

def test_publish_gets_its_ack(lang, setup):
    lead = uid("ex")
    t0 = now_ms() - 60_000
    events = [{"id": uid("ev"), "lead": lead, "source": "marketing", "type": "page_view",
               "at": t0},
              {"lead": lead, "source": "marketing", "type": "form_submit", "at": t0 + 1000,
               "attrs": {"industry": "software"}}]
    before = setup.stats()
    rc, out, err = run(argv(lang, "publish", "--ingest", setup.d.ingest_ep,
                            "--batch-id", "b-" + lead, *setup.key_args),
                       ndjson(events))
    assert rc == 0, err
    (ack,) = jsonl(out)
    assert ack["batch_id"] == "b-" + lead
    assert (ack["accepted"], ack["duplicates"], ack["rejected"], ack["sends"]) == (2, 0, [], 1)
    assert int(ack["last_seq"]) == before.last_seq + 2
    # Acknowledged means committed: the query sees it at once.
    q = setup.query()
    got = q.lead(lead)
    q.close()
    assert got is not None and got.events == 2 and got.attrs["industry"] == "software"
    # The same file again (the line without an id gets the same id from its
    # hash): every event a duplicate, nothing applied twice.
    rc, out, err = run(argv(lang, "publish", "--ingest", setup.d.ingest_ep,
                            *setup.key_args), ndjson(events))
    assert rc == 0, err
    (ack,) = jsonl(out)
    assert (ack["accepted"], ack["duplicates"]) == (0, 2)
    after = setup.stats()
    assert after.applied - before.applied == 2
    assert after.duplicates - before.duplicates == 2


def test_publish_resends_until_acknowledged(lang, setup):
    """funneld stopped (SIGSTOP): no Ack comes, the example sends the same
    batch again; resumed, funneld applies the first copy and counts the
    others as duplicates; the example prints the Ack of the batch."""
    lead = uid("ex")
    events = [{"id": uid("ev"), "lead": lead, "source": "marketing", "type": "page_view"}
              for _ in range(3)]
    before = setup.stats()
    setup.d.send_signal(signal.SIGSTOP)
    try:
        p = Proc(argv(lang, "publish", "--ingest", setup.d.ingest_ep, "--timeout", "0.5",
                      "--tries", "100", "--batch-id", "r-" + lead, *setup.key_args),
                 ndjson(events))
        p.expect("err", lambda x: "sending it again (3 of 100)" in x, RUN_TIMEOUT,
                 what="the second resend")
    finally:
        setup.d.send_signal(signal.SIGCONT)
    rc, out, err = p.finish()
    assert rc == 0, err
    (ack,) = jsonl(out)
    assert ack["batch_id"] == "r-" + lead and ack["sends"] >= 3
    # The first copy applied the events, a later one found them applied.
    assert ack["accepted"] + ack["duplicates"] == 3 and ack["rejected"] == []
    st = wait_until(lambda: (lambda s: s if s.duplicates - before.duplicates >= 3 else None)(
        setup.stats()), REPLY_TIMEOUT, what="the resent copies counted as duplicates")
    assert st.applied - before.applied == 3
    q = setup.query()
    assert q.lead(lead).events == 3
    q.close()


def test_publish_refuses_bad_input_and_sends_nothing(lang, daemon, zctx, tmp_path):
    setup = Setup(daemon, zctx)
    before = setup.stats()
    lines = (ndjson([{"lead": "x", "source": "marketing", "type": "page_view"}])
             + "{not json\n"
             + ndjson([{"lead": "x", "source": "web", "type": "page_view"},
                       {"source": "sales", "type": "demo_request"},
                       {"lead": "x", "source": "sales", "type": "t", "at": "yesterday"}]))
    rc, out, err = run(argv(lang, "publish", "--ingest", setup.d.ingest_ep,
                            *setup.key_args), lines)
    assert rc == 2 and out == []
    for n, word in ((2, "JSON"), (3, "source"), (4, "lead"), (5, "at")):
        assert "stdin:%d:" % n in err and word in err, err
    assert "nothing was sent" in err
    assert "stdin:1:" not in err
    missing = tmp_path / "nope.ndjson"
    rc, out, err = run(argv(lang, "publish", "--ingest", setup.d.ingest_ep, str(missing)))
    assert rc == 2 and str(missing) in err
    assert setup.stats().received == before.received


def test_handoff_subscriber_prints_the_handoff(lang, setup):
    sub = Proc(argv(lang, "handoffs", "--alerts", setup.d.alerts_ep, *setup.key_args))
    ing = setup.ingest()
    q = setup.query()
    try:
        t0 = now_ms() - 600_000
        # The subscription becomes active some time after the connect (PUB/
        # SUB's slow joiner): leads are driven to handoff one by one until
        # the subscriber prints one of them.
        driven = []
        first = None
        deadline = time.monotonic() + RUN_TIMEOUT
        while first is None:
            assert time.monotonic() < deadline, "the subscriber printed no handoff: %r" % (
                sub.seen,)
            lead = uid("warm")
            driven.append(lead)
            assert ing.publish(pb_events(qualifying(lead, t0))).accepted == 3
            line = sub.poll_line("out", 0.5)
            if line is not None:
                first = json.loads(line)
        assert first["topic"] == "handoff" and first["lead"] in driven
        # Now subscribed: the next lead's handoff is the next line, and it is
        # the alert funneld stored for it.
        lead = uid("ex")
        assert ing.publish(pb_events(qualifying(lead, t0 + 100_000))).accepted == 3
        got = json.loads(sub.expect("out", lambda x: lead in x, what="the handoff of " + lead))
        stored = stored_handoff(q, lead)
        assert got["topic"] == "handoff" and got["lead"] == lead
        assert got["alert_seq"] == stored.alert_seq > first["alert_seq"]
        assert got["reasons"] == list(stored.reasons) and got["reasons"]
        assert got["stage"] == stored.stage
        assert abs(got["total"] - stored.lead.total) < 1e-9
        assert got["total"] >= 50
    finally:
        sub.stop()
        ing.close()
        q.close()
    assert "Traceback" not in "\n".join(sub.seen["err"])


def stored_handoff(q, lead):
    """The handoff alert funneld stored for lead (AlertsSince, topic handoff)."""
    import conftest
    req = conftest.pb.QueryRequest()
    req.alerts_since.seq = 0
    req.alerts_since.topics.append("handoff")
    req.alerts_since.limit = 10000
    rep = q.request(req)
    assert rep.error == ""
    mine = [a for a in rep.alerts_since.alerts if a.lead_id == lead]
    assert len(mine) == 1, mine
    return mine[0]


def test_lead_query_prints_the_lead(lang, setup):
    lead = uid("ex")
    evs = qualifying(lead, now_ms() - 300_000)
    ing = setup.ingest()
    assert ing.publish(pb_events(evs)).accepted == 3
    ing.close()
    rc, out, err = run(argv(lang, "lead", lead, "--query", setup.d.query_ep,
                            *setup.key_args))
    assert rc == 0, err
    doc = json.loads("\n".join(out))
    q = setup.query()
    want = q.lead(lead)
    q.close()
    got = doc["lead"]
    assert doc["found"] is True and got["id"] == lead
    assert got["stage"] == want.stage and got["persona"] == want.persona
    assert int(got["events"]) == want.events == 3
    assert got["handoff_status"] == "HANDOFF_PENDING"
    assert got["attrs"] == dict(want.attrs)
    assert [t["event"]["id"] for t in doc["timeline"]] == [e["id"] for e in evs]
    # A lead funneld never saw: exit 1, said so.
    rc, out, err = run(argv(lang, "lead", uid("nobody"), "--query", setup.d.query_ep,
                            *setup.key_args))
    assert rc == 1 and out == [] and "does not know lead" in err


def test_help_names_the_options(lang):
    for prog, words in (("publish", ["--ingest", "--timeout", "--tries", "--batch-id",
                                     "--server-key", "--client-key"]),
                        ("handoffs", ["--alerts", "--topic", "--count", "--server-key"]),
                        ("lead", ["--query", "LEAD_ID", "--client-key"])):
        rc, out, err = run(argv(lang, prog, "--help"))
        assert rc == 0, err
        text = "\n".join(out)
        assert text.lower().startswith("usage"), text
        for w in words:
            assert w in text, (prog, w, text)
    rc, out, err = run(argv(lang, "lead", "--timeline", "many", "L"))
    assert rc == 2 and "--timeline" in err


# --------------------------------------------------------------------------
# CURVE: refused clients get a clear error, and change nothing

@pytest.fixture
def curve_setup(daemon_factory, tmp_path, zctx):
    server, server_pub, server_key = keygen(tmp_path, "server")
    crm, crm_pub, crm_key = keygen(tmp_path, "crm")
    clients = tmp_path / "clients"
    clients.write_text("%s crm\n" % crm.public.decode())
    d = daemon_factory(curve=(server.public, crm),
                       extra_args=["--curve-secret-file", server_key,
                                   "--curve-clients-file", str(clients)])
    return Setup(d, zctx, ["--server-key", server_pub, "--client-key", crm_key],
                 (server.public, crm), server_pub, tmp_path)


def test_refused_clients_get_a_clear_error(lang, curve_setup, tmp_path):
    s = curve_setup
    stranger, _, stranger_key = keygen(tmp_path, "stranger")
    _, other_pub, _ = keygen(tmp_path, "other")
    before = s.stats()
    lead = uid("ex")
    events = ndjson([{"lead": lead, "source": "marketing", "type": "page_view"}])
    programs = {"publish": (["--ingest", s.d.ingest_ep], events),
                "lead": ([lead, "--query", s.d.query_ep], None),
                "handoffs": (["--alerts", s.d.alerts_ep], None)}
    cases = [
        # a key that is not in the clients file: refused by name, on every
        # endpoint
        (["publish", "lead", "handoffs"],
         ["--server-key", s.server, "--client-key", stranger_key],
         "refused this client's CURVE key %s" % stranger.public.decode()),
        # a plain client to a CURVE server
        (["lead"], [], "CURVE on"),
        # a listed key that expects another server key
        (["publish"], ["--server-key", other_pub, "--client-key", s.key_args[3]],
         "--server-key"),
    ]
    for progs, keys, msg in cases:
        for prog in progs:
            args, stdin = programs[prog]
            rc, out, err = run(argv(lang, prog, *(args + keys + ["--timeout", "20"])), stdin)
            assert rc == 3 and out == [], (prog, keys, err)
            assert msg in err, (prog, keys, err)
    # A secret key file others may read is refused before connecting.
    os.chmod(stranger_key, 0o644)
    rc, out, err = run(argv(lang, "lead", lead, "--query", s.d.query_ep, "--server-key",
                            s.server, "--client-key", stranger_key))
    assert rc == 2 and "chmod 600" in err, err
    # Only one of the two files: said so.
    rc, out, err = run(argv(lang, "lead", lead, "--query", s.d.query_ep, "--server-key",
                            s.server))
    assert rc == 2 and "--client-key" in err, err
    after = s.stats()
    assert after.received == before.received and after.leads == before.leads
    assert after.auth_refused - before.auth_refused >= 3   # the stranger, 3 endpoints
