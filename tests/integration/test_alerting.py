"""Rules, alerts and notifications end to end: sidewatch evaluates real rule
files over scraped data, a real Alertmanager 0.25 (Debian's
prometheus-alertmanager, started here on 127.0.0.1) receives the alerts and
notifies a webhook this test runs; sidewatch's direct webhooks deliver every
notification in order across a receiver outage and a sidewatch restart;
alert state (pending `for` progress, keep_firing_for) survives restarts; bad
rule files and failing rules are reported without stopping anything."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import http.server

import pytest
import requests

from conftest import Proc, Sidewatch, free_port, wait_until, TEXT, skip_or_fail

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


class Receiver:
    """A webhook receiver: records every POST it accepts; `status` (settable)
    is what it answers; `delay` makes it hang before answering."""

    def __init__(self):
        self.accepted = []  # (path, headers, parsed body)
        self.attempts = 0
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if rcv.delay:
                    time.sleep(rcv.delay)
                with rcv.lock:
                    rcv.attempts += 1
                    status = rcv.status
                    if 200 <= status < 300:
                        rcv.accepted.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self):
        with self.lock:
            return [b for _, _, b in self.accepted]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def app(target):
    """A scrape target exposing app_latency_seconds, which tests change."""
    state = {"value": 0.9}

    def metrics(h):
        body = (f"# TYPE app_latency_seconds gauge\napp_latency_seconds {state['value']}\n").encode()
        h.send_response(200)
        h.send_header("Content-Type", TEXT)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    target.routes["/metrics"] = metrics
    target.state = state
    return target


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


RULES = """
groups:
  - name: latency
    interval: 1s
    rules:
      - alert: HighLatency
        expr: app_latency_seconds > 0.5
        for: {for_}
        keep_firing_for: {keep}
        labels:
          severity: page
        annotations:
          summary: "High latency on {{{{ $labels.instance }}}}"
          description: "latency is {{{{ $value }}}}s (> 0.5s) & rising"
"""


def config(app, rules_path, extra=""):
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    site: test
rule_files: [{rules_path}]
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{app.addr}']
{extra}
"""


def api(sw, path, **params):
    r = requests.get(sw.url + path, params=params, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def alerts(sw):
    return api(sw, "/api/v1/alerts")["alerts"]


def alert_state(sw):
    a = alerts(sw)
    return a[0]["state"] if a else None


# ---- a real Alertmanager ----------------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path, procs, receiver):
    if not os.path.exists(ALERTMANAGER):
        skip_or_fail("prometheus-alertmanager is not installed")
    port = free_port()
    cfg = write(tmp_path, "alertmanager.yml", f"""
route:
  receiver: hook
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}
        send_resolved: true
""")
    p = Proc([ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={tmp_path}/am-data",
              f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
              "--log.level=debug"], str(tmp_path / "alertmanager.log"))
    procs.append(p)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/-/ready", timeout=2).status_code == 200,
               what="alertmanager ready")
    return f"127.0.0.1:{port}", url, p


def test_alert_reaches_real_alertmanager_and_resolves(tmp_path, start_sidewatch, app, receiver,
                                                       alertmanager):
    am_addr, am_url, am_proc = alertmanager
    rules = write(tmp_path, "rules.yml", RULES.format(for_="2s", keep="0s"))
    sw = start_sidewatch(config(app, rules, f"""
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['{am_addr}']
"""), extra_args=["--web.external-url=http://sidewatch.example:9090/"])

    # Pending first, then firing after `for`.
    wait_until(lambda: alert_state(sw) == "pending", timeout=15, what="pending")
    wait_until(lambda: alert_state(sw) == "firing", timeout=15, what="firing")

    # The real Alertmanager has it, with external labels and sidewatch's generatorURL.
    def am_alerts():
        r = requests.get(am_url + "/api/v2/alerts", timeout=5).json()
        return [a for a in r if a["labels"].get("alertname") == "HighLatency"]
    got = wait_until(am_alerts, timeout=15, what="alert in Alertmanager")
    a = got[0]
    assert a["labels"]["site"] == "test"
    assert a["labels"]["severity"] == "page"
    assert a["labels"]["job"] == "app"
    assert a["labels"]["instance"] == app.addr
    assert a["annotations"]["summary"] == f"High latency on {app.addr}"
    assert a["annotations"]["description"] == "latency is 0.9s (> 0.5s) & rising"
    assert a["generatorURL"].startswith("http://sidewatch.example:9090/graph?g0.expr=")
    assert "app_latency_seconds" in requests.utils.unquote(a["generatorURL"])
    assert a["status"]["state"] == "active"

    # ... and notified the webhook.
    firing = wait_until(lambda: [b for b in receiver.bodies() if b["status"] == "firing"],
                        timeout=15, what="firing notification via Alertmanager")
    assert firing[0]["alerts"][0]["labels"]["alertname"] == "HighLatency"
    assert firing[0]["groupKey"] == '{}:{alertname="HighLatency"}'

    # Resolve: the value drops; sidewatch sends the resolved alert, the
    # Alertmanager notifies "resolved".
    app.state["value"] = 0.1
    resolved = wait_until(lambda: [b for b in receiver.bodies() if b["status"] == "resolved"],
                          timeout=20, what="resolved notification via Alertmanager")
    assert resolved[0]["alerts"][0]["status"] == "resolved"
    assert resolved[0]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    wait_until(lambda: alert_state(sw) is None, timeout=10, what="alert gone from /api/v1/alerts")
    # ALERTS was written while the alert existed.
    data = api(sw, "/api/v1/query", query='max_over_time(ALERTS{alertname="HighLatency",'
                                          'alertstate="firing"}[5m])')
    assert data["result"] and data["result"][0]["value"][1] == "1"
    m = requests.get(sw.url + "/metrics", timeout=5).text
    assert "sidewatch_notifications_sent_total" in m
    assert "sidewatch_rule_group_iterations_total" in m


# ---- direct webhooks --------------------------------------------------------------------------


def webhook_section(receiver, extra=""):
    return f"""
webhooks:
  - name: hook
    url: {receiver.url}
    group_by: [alertname]
    group_wait: 1s
    group_interval: 2s
    repeat_interval: 1h
    send_resolved: true
    hmac_secret: s3cret
{extra}
"""


def test_webhook_payload_and_signature(tmp_path, start_sidewatch, app, receiver):
    rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="0s"))
    sw = start_sidewatch(config(app, rules, webhook_section(receiver)),
                         extra_args=["--web.external-url=http://sidewatch.example:9090/"])
    bodies = wait_until(receiver.bodies, timeout=20, what="webhook notification")
    b = bodies[0]
    # Alertmanager's webhook payload, version 4, field order included.
    assert list(b.keys()) == ["receiver", "status", "alerts", "groupLabels", "commonLabels",
                              "commonAnnotations", "externalURL", "version", "groupKey",
                              "truncatedAlerts"]
    assert b["receiver"] == "hook" and b["status"] == "firing" and b["version"] == "4"
    assert b["groupKey"] == '{}:{alertname="HighLatency"}'
    assert b["groupLabels"] == {"alertname": "HighLatency"}
    assert b["truncatedAlerts"] == 0
    a = b["alerts"][0]
    assert list(a.keys()) == ["status", "labels", "annotations", "startsAt", "endsAt",
                              "generatorURL", "fingerprint"]
    assert a["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(a["fingerprint"]) == 16 and int(a["fingerprint"], 16) >= 0
    assert a["labels"]["site"] == "test"
    assert a["annotations"]["description"] == "latency is 0.9s (> 0.5s) & rising"
    # Go's encoder escapes &, < and > in the raw body; the signature covers the raw body.
    path, headers, _ = receiver.accepted[0]
    assert headers["Content-Type"] == "application/json"
    sig = headers.get("X-Sidewatch-Signature", "")
    assert sig.startswith("sha256=") and len(sig) == 7 + 64


def test_webhook_outage_and_restart_lose_nothing(tmp_path, start_sidewatch, app, receiver, procs):
    """The receiver is down (503) when the alert fires; sidewatch is
    restarted while it is still down and the alert resolves meanwhile; when
    the receiver comes back, the firing and the resolved notification both
    arrive, once each, in that order."""
    receiver.status = 503
    rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="0s"))
    cfg = config(app, rules, webhook_section(receiver))
    sw = start_sidewatch(cfg)
    wait_until(lambda: receiver.attempts >= 2, timeout=30, what="delivery attempts while down")
    assert receiver.bodies() == []
    m = requests.get(sw.url + "/metrics", timeout=5).text
    assert "sidewatch_notifications_retries_total" in m
    storage = sw.storage
    assert sw.stop() == 0

    app.state["value"] = 0.1  # resolves while sidewatch is down or just after
    sw2 = start_sidewatch(cfg, storage=storage, name="sidewatch2")
    # The resolved notification is produced (the receiver is still down).
    wait_until(lambda: receiver.attempts >= 4, timeout=30, what="attempts after restart")
    time.sleep(3)
    receiver.status = 200
    got = wait_until(lambda: [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]
                     and receiver.bodies(), timeout=60, what="firing then resolved")
    time.sleep(5)  # nothing more may come (no duplicate after the restart)
    assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]
    assert got[0]["alerts"][0]["startsAt"] == got[1]["alerts"][0]["startsAt"]
    m = requests.get(sw2.url + "/metrics", timeout=5).text
    assert 'sidewatch_notifications_queue_length{destination="hook"} 0' in m


def test_hanging_receiver_does_not_block_another(tmp_path, start_sidewatch, app, receiver):
    slow = Receiver()
    slow.delay = 30
    try:
        rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="0s"))
        extra = f"""
  - name: slow
    url: {slow.url}
    group_by: [alertname]
    group_wait: 1s
    timeout: 1s
"""
        sw = start_sidewatch(config(app, rules, webhook_section(receiver, extra)))
        wait_until(receiver.bodies, timeout=20, what="the healthy receiver notified")
        wait_until(lambda: "sidewatch_notifications_errors_total{destination=\"slow\"}"
                   in requests.get(sw.url + "/metrics", timeout=5).text,
                   timeout=20, what="the slow receiver's timeout counted")
        # Rule evaluation goes on meanwhile.
        g = api(sw, "/api/v1/rules")["groups"][0]
        assert g["rules"][0]["health"] == "ok"
    finally:
        slow.close()


# ---- alert state across restarts --------------------------------------------------------------


def test_restart_during_for_keeps_pending_time(tmp_path, start_sidewatch, app):
    rules = write(tmp_path, "rules.yml", RULES.format(for_="8s", keep="0s"))
    cfg = config(app, rules)
    sw = start_sidewatch(cfg)
    wait_until(lambda: alert_state(sw) == "pending", timeout=15, what="pending")
    active_at = alerts(sw)[0]["activeAt"]
    storage = sw.storage
    assert sw.stop() == 0
    sw2 = start_sidewatch(cfg, storage=storage, name="sidewatch2")
    a = wait_until(lambda: alerts(sw2), timeout=10, what="restored alert")
    assert a[0]["activeAt"] == active_at
    assert a[0]["state"] in ("pending", "firing")
    wait_until(lambda: alert_state(sw2) == "firing", timeout=15, what="firing after restart")
    assert alerts(sw2)[0]["activeAt"] == active_at


def test_keep_firing_for_survives_restart(tmp_path, start_sidewatch, app):
    rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="10m"))
    cfg = config(app, rules)
    sw = start_sidewatch(cfg)
    wait_until(lambda: alert_state(sw) == "firing", timeout=15, what="firing")
    app.state["value"] = 0.1
    a = wait_until(lambda: [x for x in alerts(sw) if x.get("keepFiringSince")], timeout=15,
                   what="keepFiringSince set")
    since = a[0]["keepFiringSince"]
    storage = sw.storage
    assert sw.stop() == 0
    sw2 = start_sidewatch(cfg, storage=storage, name="sidewatch2")
    a2 = wait_until(lambda: alerts(sw2), timeout=10, what="restored alert")
    time.sleep(3)  # several evaluations with the condition false
    a2 = alerts(sw2)
    assert a2 and a2[0]["state"] == "firing"
    assert a2[0]["keepFiringSince"] == since


# ---- bad input ------------------------------------------------------------------------------


def test_bad_rule_file_on_reload_keeps_previous_rules(tmp_path, start_sidewatch, app):
    rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="0s"))
    sw = start_sidewatch(config(app, rules))
    wait_until(lambda: alert_state(sw) == "firing", timeout=15, what="firing")
    with open(rules, "w") as f:
        f.write("groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: sum(\n")
    r = requests.post(sw.url + "/-/reload", timeout=10)
    assert r.status_code == 500
    assert "rules.yml:5:" in r.text
    time.sleep(2)
    g = api(sw, "/api/v1/rules")["groups"]
    assert [x["name"] for x in g] == ["latency"]
    assert alert_state(sw) == "firing"


def test_failing_rule_reported_and_group_continues(tmp_path, start_sidewatch, app):
    rules = write(tmp_path, "rules.yml", """
groups:
  - name: mixed
    interval: 1s
    rules:
      # up and app_latency_seconds of the same target differ only in their
      # name, which the rule replaces: duplicate series, an evaluation error.
      - record: bad:dup
        expr: '{__name__=~"app_latency_seconds|up", job="app"}'
      - record: good:latency
        expr: app_latency_seconds * 1000
""")
    sw = start_sidewatch(config(app, rules))

    def rules_state():
        r = api(sw, "/api/v1/rules")["groups"][0]["rules"]
        return r if r[0]["health"] == "err" and r[1]["health"] == "ok" else None
    r = wait_until(rules_state, timeout=15, what="one rule failing, the next ok")
    assert "same labelset" in r[0]["lastError"]
    assert r[0]["type"] == "recording"
    wait_until(lambda: api(sw, "/api/v1/query", query="good:latency")["result"], timeout=10,
               what="the good rule's output")
    m = requests.get(sw.url + "/metrics", timeout=5).text
    line = [l for l in m.splitlines()
            if l.startswith("sidewatch_rule_evaluation_failures_total{")]
    assert line and float(line[0].rsplit(" ", 1)[1]) >= 1


def test_rules_api_filters(tmp_path, start_sidewatch, app):
    rules = write(tmp_path, "rules.yml", RULES.format(for_="0s", keep="0s") + """
  - name: recording
    rules:
      - record: job:latency:max
        expr: max by (job) (app_latency_seconds)
""")
    sw = start_sidewatch(config(app, rules))
    wait_until(lambda: alert_state(sw) == "firing", timeout=15, what="firing")
    g = api(sw, "/api/v1/rules")["groups"]
    assert sorted(x["name"] for x in g) == ["latency", "recording"]
    g = api(sw, "/api/v1/rules", type="record")["groups"]
    assert [x["name"] for x in g] == ["recording"]
    assert g[0]["rules"][0]["type"] == "recording"
    g = api(sw, "/api/v1/rules", type="alert")["groups"]
    assert [x["name"] for x in g] == ["latency"]
    rule = g[0]["rules"][0]
    assert rule["state"] == "firing" and rule["name"] == "HighLatency"
    assert rule["labels"] == {"severity": "page"}
    assert rule["alerts"][0]["value"] == "9e-01"
    assert g[0]["file"] == rules and g[0]["interval"] == 1
    g = api(sw, "/api/v1/rules", **{"rule_name[]": "job:latency:max"})["groups"]
    assert [x["name"] for x in g] == ["recording"]
    g = api(sw, "/api/v1/rules", **{"rule_group[]": "latency"})["groups"]
    assert [x["name"] for x in g] == ["latency"]
    g = api(sw, "/api/v1/rules", **{"file[]": "/nonexistent"})["groups"]
    assert g == []
    r = requests.get(sw.url + "/api/v1/rules", params={"type": "bogus"}, timeout=5)
    assert r.status_code == 400
