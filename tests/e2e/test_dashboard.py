"""The dashboard in a real browser: headless Chromium driven by Selenium
against a real funneld. The funnel shown equals `funnelctl funnel --json`;
a handoff appears live without a reload; the lead page shows the lead's
stage; values that look like HTML show as text; no console error. And the
API: the same documents as funnelctl --json, read-only, clear errors."""

import http.client
import json
import os
import shutil
import urllib.parse

import pytest

from conftest import SALES, IngestClient, make_event, now_ms, uid

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SOURCE_DIR = os.environ.get("FUNNELD_SOURCE_DIR", ".")
WAIT_S = 10

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the skip below says what to install
    webdriver = None

# A lead id and an attribute that would run script if a page used them as
# markup.
EVIL_LEAD = 'x<script>window.__pwned=1</script>"\'&amp;'
EVIL_ATTR = '<img src=x onerror="window.__pwned=2">'


def chromium_options(user_data_dir):
    """Headless Chromium that talks to nothing but funneld."""
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1400,1000",
              "--user-data-dir=%s" % user_data_dir):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return o


@pytest.fixture
def browser(tmp_path):
    if webdriver is None or not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Debian's chromium, chromium-driver and python3-selenium "
                    "(tools/quickstart.sh installs them)")
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER),
                           options=chromium_options(tmp_path / "chromium"))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def console_errors(drv):
    return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def url(d, path):
    return "http://127.0.0.1:%d%s" % (d.http_port, path)


def wait(drv, cond, what):
    return WebDriverWait(drv, WAIT_S, poll_frequency=0.05).until(
        lambda _: cond(), message="%s within %ds" % (what, WAIT_S))


def ctl_json(d, *args):
    r = d.ctl(*args, json_out=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def publish_gen(d, tmp_path, events=2000, leads=200):
    path = tmp_path / "gen.ndjson"
    with open(path, "wb") as f:
        import subprocess
        subprocess.run([os.path.join(SOURCE_DIR, "tools", "gen-events"), "--events",
                        str(events), "--leads", str(leads)], stdout=f, check=True)
    r = d.ctl("publish", str(path), json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == events


def shown_funnel(drv):
    rows = drv.find_elements(By.CSS_SELECTOR, "#funnel-body [data-stage]")
    return [(r.get_attribute("data-stage"), int(r.get_attribute("data-now")),
             int(r.get_attribute("data-entered"))) for r in rows]


def test_funnel_and_friction_equal_funnelctl(daemon, browser, tmp_path):
    publish_gen(daemon, tmp_path)
    want = json.loads(ctl_json(daemon, "funnel"))
    want_rows = [(s["stage"], s["now"], s["entered"]) for s in want["stages"]]
    assert sum(s["now"] for s in want["stages"]) == want["leads"] == 200

    browser.get(url(daemon, "/"))
    wait(browser, lambda: shown_funnel(browser) == want_rows,
         "the funnel equal to funnelctl funnel --json %r" % (want_rows,))

    friction = json.loads(ctl_json(daemon, "friction"))
    kinds = [p["kind"] for p in friction["points"]]
    wait(browser, lambda: [e.get_attribute("data-kind") for e in browser.find_elements(
        By.CSS_SELECTOR, "#friction-points [data-kind]")] == kinds,
        "the ranked friction points %r" % kinds)

    # A persona breakdown and filter, as funnelctl funnel --by persona.
    want = json.loads(ctl_json(daemon, "funnel", "--by", "persona"))
    browser.find_element(By.CSS_SELECTOR, "#by option[value=persona]").click()
    groups = [g["group"] for g in want["groups"]]
    wait(browser, lambda: [e.get_attribute("data-group") for e in browser.find_elements(
        By.CSS_SELECTOR, "#funnel-groups [data-group]")] == groups, "groups %r" % groups)

    # The hottest leads, each a link to its page.
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR,
                                                    "#leads [data-row-lead] a.lead")) == 20,
         "20 rows of hottest leads")
    assert console_errors(browser) == []


def qualify(ingest, lead, attrs=None):
    """Events that make lead qualify (55 engagement points): its handoff."""
    t0 = now_ms() - 10_000
    ack = ingest.publish([make_event(lead, "demo_request", source=SALES, at_ms=t0,
                                     attrs=attrs),
                          make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000),
                          make_event(lead, "form_submit", at_ms=t0 + 2000)])
    assert ack.accepted == 3


def alert_rows(drv, topic):
    return [(e.get_attribute("data-lead"), e) for e in drv.find_elements(
        By.CSS_SELECTOR, "#alerts [data-topic='%s']" % topic)]


def test_handoff_appears_live_and_values_are_text(daemon, browser, zctx):
    browser.get(url(daemon, "/"))
    wait(browser, lambda: browser.find_element(By.ID, "status").get_attribute("data-live")
         == "1", "the event stream open")

    ingest = IngestClient(zctx, daemon.ingest_ep)
    try:
        plain = uid("hot")
        qualify(ingest, plain)
        wait(browser, lambda: plain in dict(alert_rows(browser, "handoff")),
             "a handoff row for %s without a reload" % plain)
        qualify(ingest, EVIL_LEAD, attrs={"company": EVIL_ATTR})
        wait(browser, lambda: EVIL_LEAD in dict(alert_rows(browser, "handoff")),
             "a handoff row for the lead with markup in its id")
    finally:
        ingest.close()

    rows = alert_rows(browser, "handoff")
    # Newest first, the score breakdown shown.
    assert [lead for lead, _ in rows][:2] == [EVIL_LEAD, plain]
    row = dict(rows)[EVIL_LEAD]
    assert EVIL_LEAD in row.text
    assert "total 55.0" in row.text
    assert row.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return window.__pwned === undefined")

    # Its link leads to the lead page, which shows its stage and attribute as text.
    link = row.find_element(By.CSS_SELECTOR, "a.lead")
    assert link.text == EVIL_LEAD
    want = json.loads(ctl_json(daemon, "lead", EVIL_LEAD))
    link.click()
    wait(browser, lambda: browser.find_elements(By.ID, "lead-stage"), "the lead page")
    stage = browser.find_element(By.ID, "lead-stage")
    assert stage.get_attribute("data-stage") == want["stage"] == "decision"
    assert stage.text == want["stage"]
    assert EVIL_LEAD in browser.find_element(By.ID, "lead-id").text
    table = browser.find_element(By.ID, "lead-attrs-table")
    assert EVIL_ATTR in table.text
    assert table.find_elements(By.TAG_NAME, "img") == []
    assert browser.find_elements(By.CSS_SELECTOR, "main script") == []
    assert browser.execute_script("return window.__pwned === undefined")
    assert console_errors(browser) == []


def test_lead_page_shows_the_stage(daemon, browser, zctx):
    lead = uid("page")
    ingest = IngestClient(zctx, daemon.ingest_ep)
    try:
        assert ingest.publish([make_event(lead, "page_view"),
                               make_event(lead, "form_submit")]).accepted == 2
    finally:
        ingest.close()
    want = json.loads(ctl_json(daemon, "lead", lead))
    browser.get(url(daemon, "/lead/" + urllib.parse.quote(lead, safe="")))
    wait(browser, lambda: browser.find_elements(By.ID, "lead-stage"), "the lead's stage")
    assert browser.find_element(By.ID, "lead-stage").get_attribute("data-stage") == want["stage"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#lead-timeline tbody tr")
    assert len(rows) == len(want["timeline"]) == 2

    # An unknown lead: the page says so, without a console error but the 404.
    browser.get(url(daemon, "/lead/nobody"))
    wait(browser, lambda: browser.find_element(By.ID, "lead-error").text, "the error")
    assert "unknown lead nobody" in browser.find_element(By.ID, "lead-error").text
    errors = console_errors(browser)
    assert all("/api/lead/nobody" in e["message"] and "404" in e["message"]
               for e in errors), errors


def test_stream_reconnects_after_a_restart(daemon_factory, browser, zctx):
    d = daemon_factory()
    browser.get(url(d, "/"))
    status = lambda: browser.find_element(By.ID, "status").get_attribute("data-live")
    wait(browser, lambda: status() == "1", "the event stream open")
    d.stop_ok()
    wait(browser, lambda: status() == "0", "the page noticing the restart")
    d.start(zctx)
    wait(browser, lambda: status() == "1", "the event stream open again")
    ingest = IngestClient(zctx, d.ingest_ep)
    try:
        lead = uid("again")
        qualify(ingest, lead)
        wait(browser, lambda: lead in dict(alert_rows(browser, "handoff")),
             "a handoff row after the restart")
    finally:
        ingest.close()


# -- the API, without a browser ---------------------------------------------

def test_api_documents_are_funnelctls(daemon_factory, tmp_path, zctx):
    # Event time: scores decay to the last event's time, not the reading's,
    # so that two reads of a lead are the same document.
    daemon = daemon_factory(extra_args=["--clock", "event"])
    publish_gen(daemon, tmp_path, events=1000, leads=100)
    for path, args in [("/api/funnel", ["funnel"]),
                       ("/api/funnel?by=persona", ["funnel", "--by", "persona"]),
                       ("/api/funnel?by=source", ["funnel", "--by", "source"]),
                       ("/api/funnel?by=persona&persona=-", ["funnel", "--by", "persona",
                                                             "--persona", "-"]),
                       ("/api/friction", ["friction"]),
                       ("/api/friction?by=source", ["friction", "--by", "source"]),
                       ("/api/friction?leads=1&limit=5", ["friction", "--leads",
                                                          "--limit", "5"]),
                       ("/api/lead/gen-L7", ["lead", "gen-L7"]),
                       ("/api/lead/gen-L7?limit=3", ["lead", "--limit", "3", "gen-L7"])]:
        code, body, headers = daemon.http_get(path)
        assert code == 200, (path, body)
        assert headers["Content-Type"] == "application/json"
        assert body == ctl_json(daemon, *args), path

    code, body, _ = daemon.http_get("/api/stats")
    assert code == 200
    got, want = json.loads(body), json.loads(ctl_json(daemon, "stats"))
    for k in ("uptime_ms", "uptime"):
        got.pop(k), want.pop(k)
    assert got == want and got["applied"] == 1000

    code, body, _ = daemon.http_get("/api/definition")
    assert code == 200
    d = json.loads(body)
    st = json.loads(ctl_json(daemon, "stats"))
    assert d["hash"] in st["definition"] and d["name"] == "aida"
    want = json.loads(ctl_json(daemon, "funnel"))
    assert [s["stage"] for s in d["stages"]] == [s["stage"] for s in want["stages"]]
    assert d["qualification"] and d["transitions"] and d["scoring"]["points"]


@pytest.mark.parametrize("path,code,text", [
    ("/api/funnel?by=bogus", 400, "unknown breakdown"),
    ("/api/funnel?by=source&persona=x", 400, "persona"),
    ("/api/funnel?colour=red", 400, "unknown parameter \"colour\""),
    ("/api/funnel?by=persona&by=source", 400, "given twice"),
    ("/api/friction?limit=5", 400, "go with leads=1"),
    ("/api/friction?leads=1&limit=0", 400, "limit"),
    ("/api/friction?leads=maybe", 400, "leads"),
    ("/api/lead/nobody", 404, "unknown lead nobody"),
    ("/api/lead/", 400, "lead id"),
    ("/api/lead/a%00b", 400, "lead id"),
    ("/api/nothing", 404, "no such API"),
    ("/events?since=x", 400, "alert_seq"),
    ("/events?topics=Bad%20Topic", 400, "topics"),
    ("/nowhere", 404, "not found"),
])
def test_api_bad_requests_get_clear_errors(daemon, path, code, text):
    got, body, headers = daemon.http_get(path)
    assert got == code, (path, body)
    if headers["Content-Type"] == "application/json":
        body = json.loads(body)["error"]
    assert text in body, body
    # and lose nothing: the daemon still answers
    assert daemon.http_get("/api/stats")[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/api/funnel", "/api/lead/x", "/events"])
def test_api_is_read_only(daemon, method, path):
    code, _, headers = daemon.http_get(path, method=method)
    assert code == 405
    assert headers["Allow"] == "GET, HEAD"


def test_pages_and_files_are_served(daemon):
    for path, ctype in [("/", "text/html"), ("/lead/x", "text/html"),
                        ("/static/app.js", "text/javascript"),
                        ("/static/style.css", "text/css"),
                        ("/favicon.ico", "image/svg+xml")]:
        code, body, headers = daemon.http_get(path)
        assert code == 200, path
        assert headers["Content-Type"].startswith(ctype), (path, headers["Content-Type"])
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    # No page holds markup built from data, nor any script inline.
    code, body, _ = daemon.http_get("/")
    assert "<script>" not in body
    for name in ("app.js", "lead.js", "common.js"):
        code, js, _ = daemon.http_get("/static/" + name)
        assert "innerHTML" not in js and "insertAdjacentHTML" not in js, name


# -- the event stream, without a browser -------------------------------------

class Stream:
    """One /events stream read as a browser's EventSource would."""

    def __init__(self, d, query="topics=handoff", last_id=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=WAIT_S)
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        self.conn.request("GET", "/events?" + query, headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")

    def event(self):
        """The next event: (id or None, alert document); comments skipped."""
        ev_id, data = None, None
        while True:
            line = self.resp.fp.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line == "" and data is not None:
                return ev_id, json.loads(data)
            if line.startswith("id: "):
                ev_id = line[4:]
            elif line.startswith("data: "):
                data = line[6:]

    def close(self):
        self.conn.close()


def test_stream_resumes_from_last_event_id(daemon, zctx):
    ingest = IngestClient(zctx, daemon.ingest_ep)
    try:
        # Handoffs while nobody watches: stored, numbered.
        a, b = uid("a"), uid("b")
        qualify(ingest, a)
        qualify(ingest, b)

        s = Stream(daemon, last_id="0")
        id_a, doc_a = s.event()
        id_b, doc_b = s.event()
        assert (doc_a["lead"], doc_b["lead"]) == (a, b)
        assert int(id_a) == doc_a["alert_seq"] < int(id_b) == doc_b["alert_seq"]
        assert doc_a["topic"] == "handoff" and doc_a["snapshot"]["lead"] == a
        s.close()

        # A browser that saw a reconnects: b first, then the live ones, once.
        s = Stream(daemon, last_id=id_a)
        assert s.event() == (id_b, doc_b)
        c = uid("c")
        qualify(ingest, c)
        ev_id, doc = s.event()
        assert doc["lead"] == c and int(ev_id) == doc["alert_seq"] > int(id_b)
        s.close()

        # ?since= does the same.
        s = Stream(daemon, query="topics=handoff&since=%s" % id_b)
        assert s.event()[1]["lead"] == c
        s.close()
    finally:
        ingest.close()
