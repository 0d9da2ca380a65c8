"""Exemplars end to end: a target serving OpenMetrics with exemplars on a
counter, on classic histogram buckets and one without a timestamp;
sidewatch scrapes it and answers /api/v1/query_exemplars; a real
Prometheus 2.42 (--enable-feature=exemplar-storage) scraping the same
target directly gives the same exemplars; sidewatch remote-writes them
(send_exemplars: true) to a real Prometheus receiver and to a second
sidewatch (--web.enable-remote-write-receiver), and both answer with
sidewatch's exemplars; they survive a SIGKILL restart."""
import signal
import threading
import time

import requests

from conftest import Proc, Sidewatch, free_port, wait_until

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class ExemplarTarget:
    """/metrics in OpenMetrics. The exposed state only changes when the test
    calls step(), so two scrapers that both scraped after a step saw the
    same exemplars (with their own timestamps: the same everywhere)."""

    def __init__(self, target):
        self.lock = threading.Lock()
        self.k = 0
        self.base = round(time.time() - 60, 3)
        self.body = b""
        self.step()
        target.routes["/metrics"] = self.serve

    def step(self):
        with self.lock:
            self.k += 1
            k, t = self.k, self.base + self.k  # seconds, ms precision
            self.body = f"""# TYPE req counter
# HELP req Requests.
req_total{{path="/a"}} {10 * k} # {{trace_id="c{k}",span_id="s{k}"}} {k + 0.5} {t:.3f}
# TYPE lat_seconds histogram
lat_seconds_bucket{{le="0.1"}} {k} # {{trace_id="h{k}"}} 0.05 {t + 0.25:.3f}
lat_seconds_bucket{{le="1.0"}} {2 * k} # {{trace_id="g{k}"}} {0.5 + k / 100:.2f} {t + 0.5:.3f}
lat_seconds_bucket{{le="+Inf"}} {2 * k}
lat_seconds_count {2 * k}
lat_seconds_sum {k * 0.7:.1f}
# TYPE untimed counter
untimed_total {k} # {{trace_id="u{k}"}} 2
# EOF
""".encode()

    def serve(self, h):
        with self.lock:
            body = self.body
        h.send_response(200)
        h.send_header("Content-Type", OM)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def query_exemplars(base, query, start=None, end=None):
    params = {"query": query}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    r = requests.get(f"{base}/api/v1/query_exemplars", params=params, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def canon(data, drop=()):
    """query_exemplars data as comparable tuples: series labels (without
    the `drop` names) -> [(exemplar labels, value, timestamp)]."""
    out = {}
    for s in data or []:
        key = tuple(sorted((k, v) for k, v in s["seriesLabels"].items() if k not in drop))
        out[key] = [(tuple(sorted(e["labels"].items())), e["value"], e["timestamp"])
                    for e in s["exemplars"]]
    return out


def sw_config(target, extra=""):
    return f"""
global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: ex
    static_configs:
      - targets: ['{target.addr}']
{extra}"""


def start_prometheus(tmp_path, procs, name, config_text, extra=()):
    port = free_port()
    cfg = tmp_path / f"{name}.yml"
    cfg.write_text(config_text)
    p = Proc(["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
              f"--storage.tsdb.path={tmp_path / (name + '-data')}", "--enable-feature=exemplar-storage",
              *extra], str(tmp_path / f"{name}.log"))
    procs.append(p)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/-/ready", timeout=2).status_code == 200,
               timeout=30, what=f"{name} ready")
    return base


TIMED = '{__name__=~"req_total|lat_seconds_bucket"}'


def scraped(base):
    """Waits until the server has scraped the target (Prometheus applies
    its targets a few seconds after the start)."""
    def up():
        r = requests.get(f"{base}/api/v1/query", params={"query": 'up{job="ex"} == 1'}, timeout=5)
        return r.status_code == 200 and r.json()["data"]["result"]
    wait_until(up, timeout=30, interval=0.2, what=f"a scrape by {base}")


def test_scrape_query_and_direct_prometheus(tmp_path, procs, target):
    ex = ExemplarTarget(target)
    prom = start_prometheus(tmp_path, procs, "prom-direct", sw_config(target))
    sw = Sidewatch(tmp_path, sw_config(target))
    procs.append(sw)
    sw.wait_ready()
    scraped(prom)
    scraped(sw.url)
    time.sleep(1)
    for _ in range(3):
        ex.step()
        time.sleep(2)
    ex.step()
    time.sleep(2.5)  # both scraped the last state

    data = query_exemplars(sw.url, "req_total")
    assert len(data) == 1, data
    s = data[0]
    assert s["seriesLabels"] == {"__name__": "req_total", "path": "/a", "job": "ex",
                                 "instance": target.addr}
    got = [(e["labels"]["trace_id"], e["labels"]["span_id"], e["value"], e["timestamp"])
           for e in s["exemplars"]]
    want = [(f"c{k}", f"s{k}", f"{k + 0.5:g}", round(ex.base + k, 3)) for k in range(1, ex.k + 1)]
    assert got == want
    # Histogram buckets: one exemplar per bucket and state; +Inf has none.
    buckets = canon(query_exemplars(sw.url, "rate(lat_seconds_bucket[5m])"))
    assert sorted(dict(k)["le"] for k in buckets) == ["0.1", "1.0"], buckets
    for key, exs in buckets.items():
        assert len(exs) == ex.k, exs
    # Time range: inclusive, in seconds.
    mid = query_exemplars(sw.url, "req_total", ex.base + 2, ex.base + 3)
    assert [e["labels"]["trace_id"] for e in mid[0]["exemplars"]] == ["c2", "c3"]
    assert query_exemplars(sw.url, "req_total", ex.base + 10, ex.base + 20) == []
    # An exemplar without a timestamp gets its sample's timestamp.
    u = query_exemplars(sw.url, "untimed_total")[0]["exemplars"]
    assert u and all(e["labels"]["trace_id"].startswith("u") and e["value"] == "2" for e in u)
    r = requests.get(f"{sw.url}/api/v1/query", params={"query": "untimed_total[10m]"}, timeout=5)
    sample_ts = {round(float(t), 3) for t, _ in r.json()["data"]["result"][0]["values"]}
    assert {e["timestamp"] for e in u} <= sample_ts
    # Several selectors (a binary expression), errors, no selector.
    both = canon(query_exemplars(sw.url, "req_total + on() group_left sum(lat_seconds_bucket)"))
    assert len(both) == 3
    r = requests.get(f"{sw.url}/api/v1/query_exemplars", params={"query": "req_total{"}, timeout=5)
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"
    r = requests.get(f"{sw.url}/api/v1/query_exemplars",
                     params={"query": "req_total", "start": "10", "end": "5"}, timeout=5)
    assert r.status_code == 400 and "end timestamp must not be before start" in r.json()["error"]
    m = sw.metrics().text
    assert "prometheus_tsdb_exemplar_exemplars_in_storage " in m
    assert "prometheus_tsdb_exemplar_max_exemplars 100000" in m

    # A real Prometheus scraping the same target agrees (timed exemplars:
    # the untimed ones carry each scraper's own scrape time).
    a = canon(query_exemplars(sw.url, TIMED))
    b = canon(query_exemplars(prom, TIMED))
    assert a and a == b
    # Same JSON shape, key for key.
    assert query_exemplars(sw.url, "req_total") == query_exemplars(prom, "req_total")


def test_remote_write_and_sigkill(tmp_path, procs, target):
    ex = ExemplarTarget(target)
    recv = start_prometheus(tmp_path, procs, "prom-receiver", "global: {}\n",
                            extra=["--web.enable-remote-write-receiver"])
    sw_b = Sidewatch(tmp_path, "global: {}\n", name="sidewatch-b",
                     extra_args=["--web.enable-remote-write-receiver"])
    procs.append(sw_b)
    sw_b.wait_ready()
    rw = f"""
remote_write:
  - url: {recv}/api/v1/write
    name: prom
    send_exemplars: true
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}
  - url: {sw_b.url}/api/v1/write
    name: sw
    send_exemplars: true
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}
"""
    config = sw_config(target, rw)
    sw = Sidewatch(tmp_path, config)
    procs.append(sw)
    sw.wait_ready()
    for _ in range(3):
        time.sleep(1.5)
        ex.step()
    time.sleep(2)

    everything = '{__name__=~"req_total|lat_seconds_bucket|untimed_total"}'
    # Up to a time already past: the untimed exemplars (one per scrape,
    # at the scrape's time) keep coming after it.
    until = time.time() - 0.5
    mine = canon(query_exemplars(sw.url, everything, end=until))
    assert len(mine) == 4 and all(mine.values()), mine
    seen = {}

    def same_at(base):
        other = canon(query_exemplars(base, everything, end=until))
        seen[base] = other
        return other if other == mine else None

    def wait_same(base, what):
        try:
            wait_until(lambda: same_at(base), timeout=30, interval=0.5, what=what)
        except AssertionError:
            raise AssertionError(f"{what}:\nsidewatch: {mine}\nthere: {seen.get(base)}")
    wait_same(recv, "the Prometheus receiver to hold sidewatch's exemplars")
    wait_same(sw_b.url, "the sidewatch receiver to hold sidewatch's exemplars")
    m = sw.metrics().text
    assert 'prometheus_remote_storage_exemplars_total{remote_name="prom"' in m
    assert 'prometheus_remote_storage_exemplars_pending{remote_name="sw"' in m

    # SIGKILL: every exemplar answered before is there after the restart.
    sw.send_signal(signal.SIGKILL)
    sw.p.wait(10)
    sw = Sidewatch(tmp_path, config, storage=sw.storage, name="sidewatch-restarted")
    procs.append(sw)
    sw.wait_ready()
    after = canon(query_exemplars(sw.url, everything, end=until))
    assert after == mine
    # And the restarted one keeps forwarding new ones.
    ex.step()
    time.sleep(2)
    until = time.time() - 0.5
    mine = canon(query_exemplars(sw.url, everything, end=until))
    assert any(e[0] == (("span_id", f"s{ex.k}"), ("trace_id", f"c{ex.k}"))
               for exs in mine.values() for e in exs)
    # A sidewatch receiver drops (and counts) resent samples, so it holds
    # everything.
    wait_same(sw_b.url, "the sidewatch receiver to hold the exemplars after the restart")
    # So does a Prometheus receiver: requests that may have reached it
    # before the kill are sent again apart from newer ones, so its
    # out-of-order refusal of them loses nothing new.
    wait_same(recv, "the Prometheus receiver to hold the exemplars after the restart")


def test_nhcb_keeps_bucket_exemplars(tmp_path, procs, target):
    """convert_classic_histograms_to_nhcb: the buckets' exemplars go with the
    native histogram (as Prometheus 3.x's NHCB parser hands them over);
    the classic series are not kept, so they have none."""
    ex = ExemplarTarget(target)
    sw = Sidewatch(tmp_path, sw_config(target).replace(
        "  - job_name: ex\n", "  - job_name: ex\n    convert_classic_histograms_to_nhcb: true\n"))
    procs.append(sw)
    sw.wait_ready()
    scraped(sw.url)
    ex.step()
    time.sleep(1.5)
    data = canon(query_exemplars(sw.url, "lat_seconds"))
    assert len(data) == 1, data
    (key, exs), = data.items()
    assert dict(key)["__name__"] == "lat_seconds" and "le" not in dict(key)
    want = []
    for k in range(1, ex.k + 1):
        want.append(((("trace_id", f"h{k}"),), "0.05", round(ex.base + k + 0.25, 3)))
        want.append(((("trace_id", f"g{k}"),), f"{0.5 + k / 100:.2f}", round(ex.base + k + 0.5, 3)))
    assert exs == want
    assert query_exemplars(sw.url, "lat_seconds_bucket") == []
    # The counter's exemplars are unaffected.
    assert len(query_exemplars(sw.url, "req_total")[0]["exemplars"]) == ex.k
