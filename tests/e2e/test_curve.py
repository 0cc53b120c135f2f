"""CURVE with an allowlist: every TCP endpoint of a funneld with
curve_secret_file is a CURVE server, and its ZAP handler admits only the
client keys of curve_clients_file (reloaded on SIGHUP). Clients it refuses
get nothing and change nothing; funneld's SUB to a CURVE publisher
connects with funneld's own key pair."""

import json
import os
import signal
import subprocess

import zmq
import zmq.auth.thread
from zmq.utils.monitor import recv_monitor_message

from conftest import (FUNNELCTL_BIN, REPLY_TIMEOUT, AlertSubscriber, CurveKeys, IngestClient,
                      QueryClient, free_port, make_batch, make_event, tcp_ep, uid,
                      wait_until, write_clients_file)

FAILED = {zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed",
          zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed_protocol",
          zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused"}


def curve_daemon(daemon_factory, tmp_path, more_clients=(), **kw):
    server = CurveKeys().write(tmp_path, "server")
    crm = CurveKeys().write(tmp_path, "crm")
    clients = tmp_path / "clients"
    write_clients_file(clients, [(crm, "crm")] + list(more_clients))
    d = daemon_factory(curve=(server.public, crm),
                       extra_args=["--curve-secret-file", server.key_file,
                                   "--curve-clients-file", str(clients)], **kw)
    return d, server, crm, clients


def handshake(ctx, endpoint, curve, payload):
    """Connect a DEALER (a CURVE client when curve = (server key, keys)),
    send payload, and return the outcome of its first handshake
    ("succeeded", "refused", "failed", "failed_protocol") and the reply,
    if one came (None otherwise)."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if curve:
        sock.curve_serverkey = curve[0]
        sock.curve_publickey = curve[1].public
        sock.curve_secretkey = curve[1].secret
    mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED
                                  | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                  | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    # A refused handshake ends the connection for good (libzmq does not
    # reconnect after an authentication failure), and a DEALER with no
    # connection blocks in send: on a loaded machine the refusal can come
    # before this process sends, so the send is bounded and may find no
    # connection to queue on.
    sock.sndtimeo = int(REPLY_TIMEOUT * 1000)
    try:
        sock.connect(endpoint)
        try:
            sock.send(payload)
        except zmq.Again:
            pass  # refused before the payload was queued: nothing left
        assert mon.poll(int(REPLY_TIMEOUT * 1000)), "no handshake outcome"
        ev = recv_monitor_message(mon)["event"]
        outcome = "succeeded" if ev == zmq.EVENT_HANDSHAKE_SUCCEEDED else FAILED[ev]
        # A refused client can have no reply (its messages never leave its
        # socket); a short look proves it did not get one meanwhile.
        wait = REPLY_TIMEOUT if outcome == "succeeded" else 0.3
        reply = sock.recv() if sock.poll(int(wait * 1000)) else None
        return outcome, reply
    finally:
        sock.disable_monitor()
        mon.close(0)
        sock.close(0)


def stats(zctx, d):
    q = QueryClient(zctx, d.query_ep, d.curve)
    try:
        return q.stats()
    finally:
        q.close()


def test_allowed_client_gets_acks_queries_and_alerts(daemon_factory, tmp_path, zctx):
    d, server, crm, _ = curve_daemon(daemon_factory, tmp_path)
    curve = (server.public, crm)
    ing = IngestClient(zctx, d.ingest_ep, curve)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["stage"], curve)
    sub.sync(ing)
    lead = uid("L")
    ack = ing.publish([make_event(lead, "page_view")])
    assert ack.accepted == 1 and ack.error == ""
    sub.await_alert(lambda t, a: a.lead_id == lead, what="stage alert over CURVE")
    q = QueryClient(zctx, d.query_ep, curve)
    assert q.lead(lead) is not None
    st = q.stats()
    assert st.auth_refused == 0
    for c in (ing, sub, q):
        c.close()
    log = d.stderr()
    assert 'accepted CURVE client "crm" (key %s) from 127.0.0.1' % crm.public.decode() in log
    assert "CURVE on: server public key %s, 1 client keys allowed" % server.public.decode() in log


def test_refused_clients_get_nothing_and_change_nothing(daemon_factory, tmp_path, zctx):
    d, server, crm, _ = curve_daemon(daemon_factory, tmp_path)
    before = stats(zctx, d)
    lead = uid("L")
    payload = make_batch([make_event(lead, "page_view")]).SerializeToString()
    stranger = CurveKeys()

    # A key that is not listed: the ZAP handler refuses it.
    outcome, reply = handshake(zctx, d.ingest_ep, (server.public, stranger), payload)
    assert (outcome, reply) == ("refused", None)
    # A plain client, and a listed key that expects another server.
    outcome, reply = handshake(zctx, d.ingest_ep, None, payload)
    assert outcome.startswith("failed") and reply is None
    outcome, reply = handshake(zctx, d.ingest_ep, (CurveKeys().public, crm), payload)
    assert outcome.startswith("failed") and reply is None
    # Queries too.
    req = b"\x22\x00"  # QueryRequest{stats: {}}
    outcome, reply = handshake(zctx, d.query_ep, (server.public, stranger), req)
    assert (outcome, reply) == ("refused", None)

    after = stats(zctx, d)
    assert after.received == before.received
    assert after.applied == before.applied
    assert after.leads == before.leads
    assert after.auth_refused >= 2  # the stranger, on ingest and on query
    q = QueryClient(zctx, d.query_ep, (server.public, crm))
    assert q.lead(lead) is None
    q.close()
    # Logged with the peer address, once a minute per key.
    log = d.stderr()
    line = "refused CURVE client key %s from 127.0.0.1" % stranger.public.decode()
    assert log.count(line) == 1, log


def test_refusals_of_one_key_are_logged_once_a_minute(daemon_factory, tmp_path, zctx):
    d, server, _, _ = curve_daemon(daemon_factory, tmp_path)
    stranger, other = CurveKeys(), CurveKeys()
    payload = make_batch([make_event(uid("L"), "page_view")]).SerializeToString()
    for _ in range(5):
        assert handshake(zctx, d.ingest_ep, (server.public, stranger), payload) == \
            ("refused", None)
    assert handshake(zctx, d.ingest_ep, (server.public, other), payload) == \
        ("refused", None)
    assert stats(zctx, d).auth_refused == 6
    log = d.stderr()
    assert log.count("refused CURVE client key %s" % stranger.public.decode()) == 1
    assert log.count("refused CURVE client key %s" % other.public.decode()) == 1


def test_revoked_key_is_refused_after_sighup(daemon_factory, tmp_path, zctx):
    tool = CurveKeys()
    d, server, crm, clients = curve_daemon(daemon_factory, tmp_path,
                                           more_clients=[(tool, "sales tool")])
    payload = make_batch([make_event(uid("L"), "page_view")]).SerializeToString()
    outcome, reply = handshake(zctx, d.ingest_ep, (server.public, tool), payload)
    assert outcome == "succeeded" and reply is not None

    write_clients_file(clients, [(crm, "crm")])
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: 1 client keys allowed (were 2)" in d.stderr(),
               REPLY_TIMEOUT, what="the clients file reloaded")
    lead = uid("L")
    payload = make_batch([make_event(lead, "page_view")]).SerializeToString()
    outcome, reply = handshake(zctx, d.ingest_ep, (server.public, tool), payload)
    assert (outcome, reply) == ("refused", None)
    st = stats(zctx, d)
    assert st.auth_refused >= 1
    q = QueryClient(zctx, d.query_ep, (server.public, crm))
    assert q.lead(lead) is None
    q.close()

    # A broken clients file is not applied: the allowlist stays as it was.
    with open(str(clients), "a") as f:
        f.write("not-a-key\n")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: keeping the 1 client keys allowed" in d.stderr(),
               REPLY_TIMEOUT, what="the broken clients file refused")
    assert "clients:3: not a CURVE public key" in d.stderr()
    ing = IngestClient(zctx, d.ingest_ep, (server.public, crm))
    assert ing.publish([make_event(uid("L"), "page_view")]).accepted == 1
    ing.close()


def test_subscribe_to_a_curve_publisher(daemon_factory, tmp_path, zctx):
    """funneld's SUB authenticates to the publisher with funneld's key pair
    and the entry's curve_server_key."""
    upstream = CurveKeys().write(tmp_path, "upstream")
    server = CurveKeys().write(tmp_path, "server")
    crm = CurveKeys()
    clients = tmp_path / "clients"
    write_clients_file(clients, [(crm, "crm")])
    pub_ep = tcp_ep(free_port())
    config = tmp_path / "funneld.yaml"
    config.write_text("curve_secret_file: %s\ncurve_clients_file: %s\n"
                      "subscribe:\n  - endpoint: %s\n    curve_server_key: %s\n"
                      % (server.key_file, clients, pub_ep, upstream.pub_file))

    pctx = zmq.Context()
    auth = zmq.auth.thread.ThreadAuthenticator(pctx)
    auth.start()
    seen = []

    class OnlyFunneld:
        def callback(self, domain, key):
            seen.append(key)
            return key == server.public

    auth.configure_curve_callback(domain="*", credentials_provider=OnlyFunneld())
    pub = pctx.socket(zmq.PUB)
    pub.linger = 0
    pub.curve_server = True
    pub.curve_secretkey = upstream.secret
    pub.curve_publickey = upstream.public
    pub.bind(pub_ep)
    try:
        d = daemon_factory(curve=(server.public, crm),
                           extra_args=["--config", str(config)])
        q = QueryClient(zctx, d.query_ep, (server.public, crm))
        lead = uid("L")
        batch = make_batch([make_event(lead, "page_view")]).SerializeToString()

        def delivered():
            pub.send_multipart([b"marketing", batch])  # the slow joiner
            return q.lead(lead)
        wait_until(delivered, REPLY_TIMEOUT, interval=0.1, what="the streamed event")
        assert seen and all(k == server.public for k in seen)
        assert "subscribed to %s (topics marketing*, sales*, CURVE)" % pub_ep in d.stderr()
        q.close()
    finally:
        pub.close(0)
        auth.stop()
        # destroy, not term: should the authenticator's thread have died on
        # an exception, its sockets are still open and term() would wait
        # for them for ever.
        pctx.destroy(linger=0)


def test_secret_key_readable_by_others_is_refused(daemon_factory, tmp_path):
    d, server, _, clients = curve_daemon(daemon_factory, tmp_path)
    d.stop_ok()
    os.chmod(server.key_file, 0o644)
    d.spawn()
    assert d.proc.wait(REPLY_TIMEOUT) == 2
    assert "must be readable by its owner only (mode 644); chmod 600" in d.stderr()
    # And a clients file with a bad line names it.
    os.chmod(server.key_file, 0o600)
    with open(str(clients), "a") as f:
        f.write("%s\n" % ("x" * 39))
    d.spawn()
    assert d.proc.wait(REPLY_TIMEOUT) == 2
    assert "clients:3: not a CURVE public key" in d.stderr()


def test_funnelctl_keygen_and_curve_client(daemon_factory, tmp_path, zctx):
    """funnelctl keygen writes the pair; funnelctl with --server-key and
    --client-key (or their environment variables) is a CURVE client."""
    r = subprocess.run([FUNNELCTL_BIN, "keygen", str(tmp_path / "server")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    server_pub = r.stdout.strip()
    assert os.stat(tmp_path / "server.key").st_mode & 0o777 == 0o600
    assert server_pub in (tmp_path / "server.pub").read_text()
    r = subprocess.run([FUNNELCTL_BIN, "--json", "keygen", str(tmp_path / "ops")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ops = json.loads(r.stdout)
    assert ops["name"] == "ops" and ops["secret_file"] == str(tmp_path / "ops.key")
    # A key is never replaced.
    r = subprocess.run([FUNNELCTL_BIN, "keygen", str(tmp_path / "ops")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "never replaced" in r.stderr
    assert ops["public_key"] in (tmp_path / "ops.pub").read_text()

    me = CurveKeys()
    clients = tmp_path / "clients"
    clients.write_text("%s ops\n%s test\n" % (ops["public_key"], me.public.decode()))
    d = daemon_factory(curve=(server_pub.encode(), me),
                       extra_args=["--curve-secret-file", str(tmp_path / "server.key"),
                                   "--curve-clients-file", str(clients)])
    keys = ["--server-key", str(tmp_path / "server.pub"),
            "--client-key", str(tmp_path / "ops.key")]
    lead = uid("L")
    r = d.ctl(*keys, "send", "--lead", lead, "--source", "marketing", "--type", "page_view")
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, FUNNELCTL_SERVER_KEY=str(tmp_path / "server.pub"),
               FUNNELCTL_CLIENT_KEY=str(tmp_path / "ops.key"))
    argv = [FUNNELCTL_BIN, "--ingest", d.ingest_ep, "--query", d.query_ep, "--json"]
    r = subprocess.run(argv + ["lead", lead], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["lead"] == lead
    r = subprocess.run(argv + ["stats"], capture_output=True, text=True, env=env, timeout=30)
    assert json.loads(r.stdout)["auth_refused"] == 0

    # Without keys, or with a key funneld does not list: no answer, a hint.
    r = d.ctl("--timeout", "1", "stats")
    assert r.returncode == 2 and b"no reply from funneld" in r.stderr
    r = subprocess.run([FUNNELCTL_BIN, "keygen", str(tmp_path / "stranger")],
                       capture_output=True, timeout=30)
    r = d.ctl("--timeout", "1", "--server-key", str(tmp_path / "server.pub"),
              "--client-key", str(tmp_path / "stranger.key"), "stats")
    assert r.returncode == 2 and b"clients file" in r.stderr, r.stderr
    # Half a key pair, or a secret key others may read: a usage error.
    r = d.ctl("--server-key", str(tmp_path / "server.pub"), "stats")
    assert r.returncode == 2 and b"needs both --server-key" in r.stderr
    os.chmod(tmp_path / "ops.key", 0o644)
    r = d.ctl(*keys, "stats")
    assert r.returncode == 2 and b"chmod 600" in r.stderr
