"""Progress of long work: the replay of the event log at start-up and
funneld --rebuild log how far they got (events, rate, time left), and tell
systemd (STATUS=, EXTEND_TIMEOUT_USEC=) so that a long start-up is not
killed by the unit's start timeout."""

import os
import pty
import re
import select
import socket
import subprocess
import time

import pytest

from conftest import (FUNNELD_BIN, READY_TIMEOUT, IngestClient, QueryClient,
                      make_event, now_ms)

# progress.c: "replaying 12.3k of 20k events (61%), 85.3k events/s, 1s left"
PROGRESS = re.compile(r"replaying (\S+) of (\S+) events \((\d+)%\), (\S+) events/s, "
                      r"(\S+) left")
# The chunk the replay reads at a time (ingest_replay.c): a line per chunk
# with an interval of 0.
CHUNK = 4096


def _count(text):
    """progress_count_text's "12.3k" back to a number (approximately)."""
    mult = {"k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1] in mult:
        return float(text[:-1]) * mult[text[-1]]
    return float(text)


def _publish(zctx, d, n, per_batch=2000):
    c = IngestClient(zctx, d.ingest_ep)
    t0 = now_ms() - 3_600_000
    for b in range(0, n, per_batch):
        evs = [make_event("pg-%04d" % (i % 500), "page_view", event_id="pg-%d" % i,
                          at_ms=t0 + i) for i in range(b, min(n, b + per_batch))]
        ack = c.publish(evs)
        assert ack.accepted == len(evs) and not ack.rejections, ack
    c.close()
    q = QueryClient(zctx, d.query_ep)
    last = q.stats().last_seq
    q.close()
    return last


def test_rebuild_logs_progress_lines_when_not_on_a_terminal(zctx, daemon_factory):
    d = daemon_factory()
    n = _publish(zctx, d, 3 * CHUNK + 100)
    d.stop_ok()

    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild",
                        "--progress-interval-ms", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "identical" in r.stdout, r.stdout
    lines = [m for m in map(PROGRESS.search, r.stderr.splitlines()) if m]
    # One line per chunk read: 4 chunks.
    assert len(lines) == (n + CHUNK - 1) // CHUNK, r.stderr
    done = [_count(m.group(1)) for m in lines]
    assert done == sorted(done) and done[0] < done[-1], r.stderr
    assert all(_count(m.group(2)) == pytest.approx(n, rel=0.01) for m in lines), r.stderr
    assert lines[-1].group(3) == "100" and int(lines[0].group(3)) < 100, r.stderr
    assert all(_count(m.group(4)) > 0 for m in lines), r.stderr
    # Not a terminal: plain log lines (the sd-daemon prefix), no redrawing.
    assert "\r" not in r.stderr and "\033" not in r.stderr, repr(r.stderr[:400])
    assert all(l.startswith("<") for l in r.stderr.splitlines()), r.stderr
    assert re.search(r"replayed %d events in \S+ \(\S+ events/s\)" % n, r.stderr), r.stderr

    # A long interval: only the closing line.
    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild",
                        "--progress-interval-ms", "3600000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not PROGRESS.search(r.stderr), r.stderr
    assert "replayed %d events" % n in r.stderr, r.stderr


def test_rebuild_on_a_terminal_redraws_one_line(zctx, daemon_factory):
    d = daemon_factory()
    n = _publish(zctx, d, CHUNK + 10)
    d.stop_ok()
    master, slave = pty.openpty()
    p = subprocess.Popen([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no output from funneld --rebuild within 60 s: %r" % out
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(60) == 0, out
    text = out.decode(errors="replace")
    # The line is drawn in place (carriage return, erase line), then erased
    # before the closing log line, which has the terminal format (no <6>).
    drawn = re.findall(r"\r\x1b\[K(replaying [^\r\n]*)", text)
    assert drawn and all(PROGRESS.match(l) for l in drawn), repr(text)
    assert re.search(r"\r\x1b\[K\S+ info +\[ingest\] replayed %d events" % n, text), \
        repr(text)
    assert "<6>" not in text, repr(text)


def _notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    if len(path) >= 100:  # sun_path is 108 bytes
        path = "/tmp/funneld-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def test_startup_replay_tells_systemd_how_far_it_got(zctx, daemon_factory, tmp_path,
                                                     monkeypatch):
    d = daemon_factory(extra_args=["--progress-interval-ms", "0"])
    n = _publish(zctx, d, 2 * CHUNK + 10)
    d.stop_ok()
    # No clean-close marker: the state may be torn, so funneld rebuilds it
    # from the whole log at start-up, before READY=1.
    os.unlink(os.path.join(d.state_dir, "state.mark"))

    sock, path = _notify_socket(tmp_path)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        d.spawn()
        monkeypatch.delenv("NOTIFY_SOCKET")
        messages = []
        deadline = time.monotonic() + READY_TIMEOUT
        while not any("READY=1" in m for m in messages):
            left = deadline - time.monotonic()
            if left <= 0 or d.proc.poll() is not None:
                pytest.fail("no READY=1 (%r):\n%s" % (messages, d.stderr()))
            sock.settimeout(left)
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                continue
    finally:
        sock.close()
        if os.path.exists(path):
            os.unlink(path)

    before_ready = messages[:next(i for i, m in enumerate(messages) if "READY=1" in m)]
    progress = [m for m in before_ready if "STATUS=replaying" in m]
    # The first at the start (0 of n), then one per chunk.
    assert len(progress) >= 2, messages
    for m in progress:
        fields = dict(l.split("=", 1) for l in m.splitlines())
        assert int(fields["EXTEND_TIMEOUT_USEC"]) >= 30_000_000, m
        got = PROGRESS.search(fields["STATUS"]) or re.search(
            r"replaying (\S+) of (\S+) events", fields["STATUS"])
        assert got and _count(got.group(2)) == pytest.approx(n, rel=0.01), m
    assert n < 10000  # written out exactly, not as "12.3k"
    assert progress[0].endswith("STATUS=replaying 0 of %d events (0%%)" % n), messages
    assert any("STATUS=replayed %d events" % n in m for m in before_ready), messages
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=ready: ingest %s" % d.ingest_ep in ready, ready

    d.wait_ready(zctx)
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    q.close()
    assert st.applied == n and st.last_seq == n, st
