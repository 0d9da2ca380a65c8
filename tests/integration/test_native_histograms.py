"""Native histograms end to end: a target served from this test exposes the
protobuf format (native integer and float histograms, classic histograms,
counters, gauges, summaries), encoded by tests/integration/promproto.py
from the wire format; sidewatch scrapes it, stores the histograms in its
histogram chunks, and answers queries. A real Prometheus 2.42
(--enable-feature=native-histograms) scrapes the same target, and promtool
2.42 asks both the same histogram_count / histogram_sum /
histogram_quantile / histogram_fraction questions: the answers must agree.

Also: Prometheus's JSON shape for histogram results, staleness of a
histogram series that disappears, histograms surviving a restart and a
SIGKILL (write-ahead replay), native_histogram_bucket_limit, the format
without scrape_native_histograms (classic series only), and bad protobuf
bodies failing the scrape with a reason while other targets go on.
"""
import math
import signal
import subprocess
import time

import requests

import promproto
from conftest import BIN, Sidewatch, wait_until
from test_promql_api import close, promtool, start_prometheus

A = {"count": 18, "sum": 12.5, "schema": 3, "zero_threshold": 0.001, "zero_count": 2,
     "positive": [(-5, [1, 3, 5, 2]), (3, [4, 1])]}
B = {"count": 20, "sum": 30.0, "schema": 0, "zero_threshold": 0.0, "zero_count": 0,
     "positive": [(0, [5, 10, 3])], "negative": [(1, [2])], "packed": False}
F = {"count": 7.5, "sum": 4.25, "schema": 1, "zero_threshold": 0.01, "zero_count": 0.5,
     "positive": [(0, [1.5, 2.5]), (2, [3.0])], "float": True}


def families(with_b=True, with_float=True):
    lat = [{"labels": {"route": "/a"}, "histogram": A}]
    if with_b:
        lat.append({"labels": {"route": "/b"}, "histogram": B})
    fams = [
        {"name": "request_latency_seconds", "help": "Request latency.", "type": "HISTOGRAM",
         "metrics": lat},
        {"name": "classic_latency_seconds", "help": "Classic.", "type": "HISTOGRAM",
         "metrics": [{"histogram": {"count": 10, "sum": 4.0,
                                    "buckets": [(0.1, 2), (0.5, 6), (1.0, 9)]}}]},
        {"name": "requests_total", "help": "Requests.", "type": "COUNTER",
         "metrics": [{"labels": {"code": "200"}, "counter": 42.0}]},
        {"name": "temperature", "type": "GAUGE", "metrics": [{"gauge": 21.5}]},
        {"name": "rpc_seconds", "type": "SUMMARY",
         "metrics": [{"summary": {"count": 4, "sum": 2.0, "quantiles": [(0.5, 0.4), (0.9, 0.8)]}}]},
    ]
    if with_float:
        fams.append({"name": "queue_wait_seconds", "type": "GAUGE_HISTOGRAM",
                     "metrics": [{"histogram": F}]})
    return fams


class Served:
    """What the target serves; a test swaps the body."""

    def __init__(self, body):
        self.body = body
        self.content_type = promproto.CONTENT_TYPE

    def __call__(self, handler):
        handler.send_response(200)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        handler.wfile.write(self.body)


def sw_config(target, extra=""):
    return f"""
global:
  scrape_interval: 1s
  scrape_native_histograms: true
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{target.addr}']
{extra}"""


def query(sw, expr, **params):
    r = requests.get(sw.url + "/api/v1/query", params={"query": expr, **params}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def up(sw, job):
    res = query(sw, f'up{{job="{job}"}}')
    return res[0]["value"][1] if res else None


def target_error(sw, job):
    for t in requests.get(sw.url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]:
        if t["labels"]["job"] == job:
            return t["health"], t["lastError"]
    return None, None


def bucket_bounds(schema, idx):
    base = 2.0 ** (2.0 ** -schema)
    return base ** (idx - 1), base ** idx


def test_same_answers_as_prometheus(start_sidewatch, target, tmp_path, procs):
    target.routes["/metrics"] = Served(promproto.encode(families(with_float=False)))
    prom_cfg = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{target.addr}']
"""
    prom = start_prometheus(tmp_path, procs, prom_cfg, extra_args=["--enable-feature=native-histograms"])
    sw = start_sidewatch(sw_config(target))

    def both():
        q = {"query": "histogram_count(request_latency_seconds)"}
        return all(len(requests.get(u + "/api/v1/query", params=q, timeout=2).json()["data"]["result"]) == 2
                   for u in (prom, sw.url))
    wait_until(both, timeout=30, what="both servers holding the native histograms")
    accepts = {h.get("Accept", "") for _, h in target.requests}
    assert any(a.startswith("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                            "encoding=delimited;q=0.6") for a in accepts), accepts
    t_eval = round(time.time(), 3)

    exprs = [
        "histogram_count(request_latency_seconds)",
        "histogram_sum(request_latency_seconds)",
        "histogram_count(sum(request_latency_seconds))",
        "histogram_sum(sum by (route) (request_latency_seconds))",
        "histogram_quantile(0.5, request_latency_seconds)",
        "histogram_quantile(0.9, request_latency_seconds)",
        "histogram_quantile(0.99, request_latency_seconds)",
        "histogram_quantile(0.1, request_latency_seconds)",
        "histogram_quantile(0.9, sum(request_latency_seconds))",
        "histogram_fraction(0, 1, request_latency_seconds)",
        "histogram_fraction(-1, 0.5, request_latency_seconds)",
        "histogram_quantile(0.9, classic_latency_seconds_bucket)",
        "classic_latency_seconds_count",
        "classic_latency_seconds_sum",
        "requests_total",
        "temperature",
        "rpc_seconds",
        "rpc_seconds_count",
        "rpc_seconds_sum",
        'count by (__name__) ({__name__=~"request_latency_seconds.*"})',
    ]
    problems = []
    for expr in exprs:
        p = promtool("instant", "--time", str(t_eval), prom, expr)
        s = promtool("instant", "--time", str(t_eval), sw.url, expr)
        pm = {promproto_key(x["metric"]): x["value"][1] for x in p}
        sm = {promproto_key(x["metric"]): x["value"][1] for x in s}
        if not pm:
            problems.append(f"{expr}: Prometheus answered nothing")
        if set(pm) != set(sm):
            problems.append(f"{expr}: series differ: prometheus {sorted(pm)} sidewatch {sorted(sm)}")
            continue
        for k in pm:
            want = pm[k]
            if expr.startswith("histogram_quantile(") and "_bucket" not in expr:
                want = exponential_interpolation(float(pm[k]), 3 if "route=/a" in k else 0)
            if not close(want, sm[k], rel=1e-9):
                problems.append(f"{expr} {k}: prometheus {pm[k]} (so {want}) sidewatch {sm[k]}")
    assert not problems, "\n".join(problems)


def exponential_interpolation(v_linear, schema):
    """Prometheus 2.42 interpolates linearly inside an exponential bucket,
    3.x (and sidewatch) exponentially: v = lower * (upper/lower)^f for the
    same rank fraction f. From 2.42's answer (a positive bucket), the
    answer 3.x gives (for a negative bucket [-hi, -lo) mirrored). The zero
    bucket (threshold 0.001 here) is linear in both."""
    if abs(v_linear) <= 0.001:
        return v_linear
    i = math.ceil(math.log2(abs(v_linear)) * 2 ** schema - 1e-12)
    lo, hi = bucket_bounds(schema, i)
    if v_linear > 0:
        f = (v_linear - lo) / (hi - lo)
        return lo * (hi / lo) ** f
    f = (v_linear + hi) / (hi - lo)
    return -(2 ** (math.log2(lo) + (math.log2(hi) - math.log2(lo)) * (1 - f)))


def promproto_key(metric):
    return ",".join(f"{k}={v}" for k, v in sorted(metric.items()))


def test_histograms_stored_and_returned(start_sidewatch, target, procs, tmp_path):
    served = Served(promproto.encode(families()))
    target.routes["/metrics"] = served
    sw = start_sidewatch(sw_config(target))
    wait_until(lambda: len(query(sw, "request_latency_seconds")) == 2, what="histograms stored")

    # Prometheus's JSON shape: "histogram": [ts, {count, sum, buckets}] with
    # buckets [boundary rule, lower, upper, count] as strings.
    res = {r["metric"]["route"]: r for r in query(sw, "request_latency_seconds")}
    a = res["/a"]
    assert "value" not in a and a["metric"]["__name__"] == "request_latency_seconds"
    ts, h = a["histogram"]
    assert float(h["count"]) == 18 and float(h["sum"]) == 12.5
    buckets = h["buckets"]
    # zero bucket [-0.001, 0.001] (closed: rule 3) then the 6 positive buckets
    assert buckets[0] == [3, "-0.001", "0.001", "2"], buckets[0]
    idx = [-5, -4, -3, -2, 2, 3]
    counts = [1, 3, 5, 2, 4, 1]
    assert len(buckets) == 7, buckets
    for b, i, c in zip(buckets[1:], idx, counts):
        lo, hi = bucket_bounds(3, i)
        assert b[0] == 0, b  # (lower, upper]
        assert math.isclose(float(b[1]), lo, rel_tol=1e-12) and math.isclose(float(b[2]), hi, rel_tol=1e-12), (b, lo, hi)
        assert float(b[3]) == c
    # negative buckets come first, lowest first
    hb = res["/b"]["histogram"][1]["buckets"]
    assert float(hb[0][1]) == -2.0 and float(hb[0][2]) == -1.0 and hb[0][0] == 1, hb[0]

    # a float gauge histogram keeps its float counts
    fq = query(sw, "queue_wait_seconds")
    assert len(fq) == 1
    fh = fq[0]["histogram"][1]
    assert float(fh["count"]) == 7.5 and float(fh["sum"]) == 4.25
    assert [float(b[3]) for b in fh["buckets"]] == [0.5, 1.5, 2.5, 3.0], fh["buckets"]
    # classic series are only made for classic histograms
    names = {r["metric"]["__name__"] for r in query(sw, '{__name__=~"request_latency.*|classic_latency.*"}')}
    assert names == {"request_latency_seconds", "classic_latency_seconds_bucket",
                     "classic_latency_seconds_count", "classic_latency_seconds_sum"}, names
    # a range query returns "histograms"
    def points():
        now = time.time()
        r = requests.get(sw.url + "/api/v1/query_range",
                         params={"query": 'request_latency_seconds{route="/a"}', "start": now - 3,
                                 "end": now, "step": 1}, timeout=10).json()
        assert r["status"] == "success", r
        return len(r["data"]["result"][0]["histograms"]) == 4
    wait_until(points, timeout=10, what="a range of histograms")
    # rate over a constant histogram is an empty histogram of the same layout
    rq = query(sw, 'histogram_count(rate(request_latency_seconds{route="/a"}[5s]))')
    assert rq and float(rq[0]["value"][1]) == 0

    # The /b series disappears: the next scrape marks it stale.
    served.body = promproto.encode(families(with_b=False))
    wait_until(lambda: len(query(sw, "request_latency_seconds")) == 1, what="/b marked stale")

    # Kept across a clean restart and across SIGKILL (write-ahead replay).
    t_before = time.time()
    for sig in (signal.SIGKILL, signal.SIGTERM):
        storage = sw.storage
        sw.stop(sig)
        sw = Sidewatch(tmp_path, f"""
global:
  scrape_interval: 1h
scrape_configs: []
""", name=f"restarted-{int(sig)}", storage=storage)
        procs.append(sw)
        sw.wait_ready()
        got = query(sw, 'histogram_count(request_latency_seconds{route="/a"})', time=str(t_before))
        assert got and float(got[0]["value"][1]) == 18, (sig, got)
        got = query(sw, "histogram_sum(queue_wait_seconds)", time=str(t_before))
        assert got and float(got[0]["value"][1]) == 4.25, (sig, got)

    # `sidewatch dump` prints them in promqltest's form, the marker as stale
    sw.stop()
    out = subprocess.run([BIN, "dump", sw.storage, '--match=request_latency_seconds{route="/b"}'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(line.startswith('{__name__="request_latency_seconds", instance=') for line in lines), lines[:3]
    assert "{{count:20 sum:30 buckets:[5 10 3] n_offset:1 n_buckets:[2]}}" in lines[0], lines[0]
    assert " stale " in lines[-1], lines[-1]


def test_bucket_limit_and_resolution(start_sidewatch, target):
    target.routes["/metrics"] = Served(promproto.encode(families(with_float=False)))
    target.routes["/a-only"] = Served(promproto.encode([
        {"name": "request_latency_seconds", "type": "HISTOGRAM",
         "metrics": [{"labels": {"route": "/a"}, "histogram": A}]}]))
    sw = start_sidewatch(sw_config(target, f"""
  - job_name: limited
    native_histogram_bucket_limit: 3
    static_configs:
      - targets: ['{target.addr}']
    metrics_path: /a-only
  - job_name: too_many
    native_histogram_bucket_limit: 1
    static_configs:
      - targets: ['{target.addr}']
  - job_name: coarse
    native_histogram_min_bucket_factor: 1.5
    static_configs:
      - targets: ['{target.addr}']
"""))
    wait_until(lambda: up(sw, "limited") is not None and up(sw, "too_many") is not None
               and up(sw, "coarse") is not None, what="all jobs scraped")
    assert up(sw, "limited") == "1"
    h = query(sw, 'request_latency_seconds{job="limited"}')[0]["histogram"][1]
    assert len([b for b in h["buckets"] if b[0] != 3]) <= 3, h
    assert float(h["count"]) == 18 and float(h["sum"]) == 12.5
    # /b has negative and positive buckets: never fewer than 2.
    assert up(sw, "too_many") == "0"
    assert target_error(sw, "too_many") == ("down", "histogram bucket limit exceeded")
    # factor 1.5: schema floor(-log2(log2 1.5)) = 0
    assert up(sw, "coarse") == "1"
    h = query(sw, 'request_latency_seconds{job="coarse",route="/a"}')[0]["histogram"][1]
    for b in h["buckets"]:
        if b[0] != 3:
            lo, hi = float(b[1]), float(b[2])
            assert math.isclose(hi / lo, 2.0), b
    assert float(h["count"]) == 18
    m = requests.get(sw.url + "/metrics", timeout=5).text
    refused = [float(line.split()[1]) for line in m.splitlines()
               if line.startswith("sidewatch_scrapes_exceeded_bucket_limit_total ")]
    assert refused and refused[0] >= 1, refused


def test_without_native_histograms(start_sidewatch, target):
    """scrape_native_histograms off (Prometheus's default): the Accept header
    does not ask for protobuf, and a protobuf body still parses, with the
    native histograms as classic series (_count, _sum, +Inf bucket)."""
    target.routes["/metrics"] = Served(promproto.encode(families(with_float=False)))
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{target.addr}']
""")
    wait_until(lambda: up(sw, "app") == "1", what="scraped")
    assert all("vnd.google.protobuf" not in h.get("Accept", "") for _, h in target.requests)
    assert query(sw, "request_latency_seconds") == []
    got = {r["metric"]["route"]: r["value"][1] for r in query(sw, "request_latency_seconds_count")}
    assert got == {"/a": "18", "/b": "20"}
    inf = query(sw, 'request_latency_seconds_bucket{le="+Inf"}')
    assert len(inf) == 2


def test_bad_protobuf_bodies(start_sidewatch, target):
    good = promproto.encode(families(with_float=False))
    bad_counts = dict(A, count=3)  # fewer observations than the buckets hold
    bad_schema = dict(A, schema=42)
    bad_spans = dict(A, positive=[(0, [1, 2], 5)])  # a span of 5 buckets, 2 deltas
    bodies = {
        "/truncated": good[: len(good) // 2],
        "/oversized-prefix": promproto.varint(1 << 40) + b"\x0a\x01a",
        "/garbage": b"\x05\xff\xff\xff\xff\xff",
        "/bad-counts": promproto.encode([{"name": "h", "type": "HISTOGRAM", "metrics": [{"histogram": bad_counts}]}]),
        "/bad-schema": promproto.encode([{"name": "h", "type": "HISTOGRAM", "metrics": [{"histogram": bad_schema}]}]),
        "/negative-count": promproto.encode([{"name": "h", "type": "HISTOGRAM", "metrics": [
            {"histogram": {"count": 5, "sum": 1.0, "schema": 0, "positive": [(0, [3, -2])]}}]}]),
        "/bad-spans": promproto.encode([{"name": "h", "type": "HISTOGRAM", "metrics": [{"histogram": bad_spans}]}]),
    }
    jobs = ""
    for path, body in bodies.items():
        target.routes[path] = Served(body)
        jobs += f"""
  - job_name: {path[1:]}
    metrics_path: {path}
    static_configs:
      - targets: ['{target.addr}']
"""
    target.routes["/metrics"] = Served(good)
    sw = start_sidewatch(sw_config(target, jobs))
    wait_until(lambda: all(up(sw, p[1:]) is not None for p in bodies) and up(sw, "app") == "1",
               what="every job scraped")
    problems = []
    for path in bodies:
        health, err = target_error(sw, path[1:])
        if up(sw, path[1:]) != "0" or health != "down" or not err:
            problems.append(f"{path}: up {up(sw, path[1:])}, health {health}, error {err!r}")
    assert not problems, "\n".join(problems)
    # nothing of a failed scrape was stored; the good target is unaffected
    assert query(sw, 'h') == []
    assert len(query(sw, 'request_latency_seconds{job="app"}')) == 2


CLASSIC_TEXT = b"""# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{route="/a",le="0.1"} 3
latency_seconds_bucket{route="/a",le="0.5"} 8
latency_seconds_bucket{route="/a",le="1"} 11
latency_seconds_bucket{route="/a",le="+Inf"} 12
latency_seconds_sum{route="/a"} 5.5
latency_seconds_count{route="/a"} 12
latency_seconds_bucket{route="/b",le="0.1"} 0
latency_seconds_bucket{route="/b",le="0.5"} 1.5
latency_seconds_bucket{route="/b",le="1"} 2.5
latency_seconds_bucket{route="/b",le="+Inf"} 2.5
latency_seconds_sum{route="/b"} 1.25
latency_seconds_count{route="/b"} 2.5
# TYPE broken_seconds histogram
broken_seconds_bucket{le="1"} 5
broken_seconds_bucket{le="2"} 3
broken_seconds_count 5
# TYPE plain gauge
plain 1
"""


def test_classic_histograms_to_nhcb(start_sidewatch, target):
    """convert_classic_histograms_to_nhcb: the text format's classic
    histograms (and the protobuf format's) become custom-bucket native
    histograms; histogram_quantile over them equals the classic answer; the
    classic series stay only with always_scrape_classic_histograms; a
    histogram whose counts are not cumulative keeps its classic series
    (Prometheus drops them)."""
    target.routes["/text"] = Served(CLASSIC_TEXT)
    target.routes["/text"].content_type = "text/plain; version=0.0.4"
    target.routes["/proto"] = Served(promproto.encode(families(with_float=False)))
    jobs = ""
    for job, path, extra in (("classic", "/text", ""),
                             ("nhcb", "/text", "convert_classic_histograms_to_nhcb: true"),
                             ("nhcb_keep", "/text", "convert_classic_histograms_to_nhcb: true\n"
                              "    always_scrape_classic_histograms: true"),
                             ("nhcb_proto", "/proto", "convert_classic_histograms_to_nhcb: true")):
        jobs += f"""
  - job_name: {job}
    metrics_path: {path}
    scrape_native_histograms: true
    {extra}
    static_configs:
      - targets: ['{target.addr}']
"""
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:{jobs}""")
    wait_until(lambda: all(up(sw, j) == "1" for j in ("classic", "nhcb", "nhcb_keep", "nhcb_proto")),
               what="every job up")
    wait_until(lambda: len(query(sw, 'latency_seconds{job="nhcb"}')) == 2, what="NHCB stored")

    a = {r["metric"]["route"]: r["histogram"][1] for r in query(sw, 'latency_seconds{job="nhcb"}')}
    assert float(a["/a"]["count"]) == 12 and float(a["/a"]["sum"]) == 5.5
    # custom buckets: (-Inf, 0.1] then (0.1, 0.5], (0.5, 1], (1, +Inf]
    assert [(b[1], b[2], b[3]) for b in a["/a"]["buckets"]] == [
        ("-Inf", "0.1", "3"), ("0.1", "0.5", "5"), ("0.5", "1", "3"), ("1", "+Inf", "1")], a["/a"]
    assert [b[3] for b in a["/b"]["buckets"]] == ["1.5", "1"], a["/b"]
    assert query(sw, 'latency_seconds_bucket{job="nhcb"}') == []
    assert query(sw, 'latency_seconds_count{job="nhcb"}') == []
    assert len(query(sw, 'latency_seconds_bucket{job="nhcb_keep"}')) == 8
    assert len(query(sw, 'latency_seconds{job="nhcb_keep"}')) == 2
    # not cumulative: no histogram; its classic series stay
    assert query(sw, 'broken_seconds{job="nhcb"}') == []
    assert len(query(sw, 'broken_seconds_bucket{job="nhcb"}')) == 2
    assert query(sw, 'plain{job="nhcb"}')
    for q in (0.25, 0.5, 0.9, 0.99):
        c = {r["metric"]["route"]: float(r["value"][1]) for r in query(
            sw, f'histogram_quantile({q}, latency_seconds_bucket{{job="classic"}})')}
        n = {r["metric"]["route"]: float(r["value"][1]) for r in query(
            sw, f'histogram_quantile({q}, latency_seconds{{job="nhcb"}})')}
        assert set(c) == set(n) == {"/a", "/b"}
        for k in c:
            assert math.isclose(c[k], n[k], rel_tol=1e-12), (q, k, c[k], n[k])
    # the protobuf format's classic histogram converts too
    h = query(sw, 'classic_latency_seconds{job="nhcb_proto"}')
    assert len(h) == 1 and float(h[0]["histogram"][1]["count"]) == 10, h
    assert query(sw, 'classic_latency_seconds_bucket{job="nhcb_proto"}') == []
