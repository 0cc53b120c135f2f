"""examples/python/alerts_resume.py, the resumable consumer of the README,
against a real funneld, its funnel_pb2 compiled from proto/funnel.proto with
protoc at test time (pyzmq and python3-protobuf, as a user would)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SALES, make_event, now_ms, uid

SRC = os.environ.get("FUNNELD_SOURCE_DIR", "")
EXAMPLE = os.path.join(SRC, "examples", "python", "alerts_resume.py")


@pytest.fixture(scope="module")
def pyout(tmp_path_factory):
    out = tmp_path_factory.mktemp("pb")
    subprocess.run(["protoc", "-I", os.path.join(SRC, "proto"), "--python_out", str(out),
                    "funnel.proto"], check=True)
    return str(out)


def qualify(lead, t0):
    return [make_event(lead, "demo_request", source=SALES, at_ms=t0),
            make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000),
            make_event(lead, "form_submit", at_ms=t0 + 2000)]


def run(d, pyout, state, *args):
    env = dict(os.environ, PYTHONPATH=pyout)
    p = subprocess.run([sys.executable, EXAMPLE, "--alerts", d.alerts_ep, "--query",
                        d.query_ep, "--state", str(state)] + list(args),
                       capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]


def test_resumable_consumer_handles_each_handoff_once_across_restarts(tmp_path, pyout,
                                                                      daemon, ingest, query):
    t0 = now_ms() - 3_600_000
    state = tmp_path / "handoff.seq"
    state.write_text("0\n")
    first = [uid("ex") for _ in range(3)]
    for i, lead in enumerate(first):
        assert ingest.publish(qualify(lead, t0 + i * 10_000)).accepted == 3
    got = run(daemon, pyout, state, "--count", "3")
    assert [x["lead"] for x in got] == first
    assert int(state.read_text()) == got[-1]["alert_seq"]
    # Stopped: four more leads qualify meanwhile. The next run handles
    # exactly those, in order.
    more = [uid("ex") for _ in range(4)]
    for i, lead in enumerate(more):
        assert ingest.publish(qualify(lead, t0 + (10 + i) * 10_000)).accepted == 3
    got2 = run(daemon, pyout, state, "--count", "4")
    assert [x["lead"] for x in got2] == more
    assert got2[0]["alert_seq"] > got[-1]["alert_seq"]
    assert all(x["topic"] == "handoff" for x in got + got2)
    # Nothing left: a run that waits for a while handles nothing again.
    assert run(daemon, pyout, state, "--idle", "1.5") == []
    assert int(state.read_text()) >= got2[-1]["alert_seq"]


def test_resumable_consumer_over_curve(tmp_path, pyout, daemon_factory, zctx):
    from client_examples import keygen
    from conftest import IngestClient
    server, server_pub, server_key = keygen(tmp_path, "server")
    tool, _, tool_key = keygen(tmp_path, "sales-tool")
    clients = tmp_path / "clients"
    clients.write_text("%s sales-tool\n" % tool.public.decode())
    d = daemon_factory(curve=(server.public, tool),
                       extra_args=["--curve-secret-file", server_key,
                                   "--curve-clients-file", str(clients)])
    ing = IngestClient(zctx, d.ingest_ep, (server.public, tool))
    t0 = now_ms() - 3_600_000
    leads = [uid("ex") for _ in range(2)]
    for i, lead in enumerate(leads):
        assert ing.publish(qualify(lead, t0 + i * 10_000)).accepted == 3
    ing.close()
    state = tmp_path / "handoff.seq"
    state.write_text("0\n")
    got = run(d, pyout, state, "--count", "2", "--server-key", server_pub,
              "--client-key", tool_key)
    assert [x["lead"] for x in got] == leads
    assert "accepted CURVE client \"sales-tool\"" in d.stderr()
