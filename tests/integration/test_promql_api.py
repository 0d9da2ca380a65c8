"""The Prometheus HTTP API (/api/v1) against the real thing.

(a) A real Prometheus 2.42 (Debian's) and sidewatch scrape the same target
    served by this test; promtool 2.42 queries both (instant, range, series,
    labels) with dashboard-style PromQL and the answers must agree.
(b) The requests Grafana's Prometheus datasource sends when a dashboard
    loads, replayed: statuses, content types and JSON shapes.
(c) Bad input: malformed queries, bad parameters, huge ranges, too many
    samples, timeouts; the process keeps running.

How (a) compares two servers that scrape at different moments: the
target's counters and the `queue_depth` gauge grow linearly with wall-clock
time (value = slope x seconds since the target started, exposed with the
timestamp it was computed for), so a rate, an increase ratio, a histogram
quantile over rates or a predict_linear over a window is the same whatever
the scrape phase and however late a scrape request arrives; the other
gauges are constant. Queries are evaluated at times both servers have covered with
samples for longer than the longest window.

Allowed 2.42 -> 3.x differences (../shared/conformance/README.md), and how
each is kept out of the comparison:
  #1 left-open windows: a window holds one sample less in 3.x; rates of
     linear counters do not depend on the number of samples, and no query
     here counts samples (no count_over_time).
  #4 le/quantile normalisation at scrape ("1" -> "1.0" in 3.x): the target
     exposes le values that are already normalised ("0.1", "1.0", "+Inf").
  #8 rate extrapolation capped at half the sample interval (2.51): a
     linear counter's extrapolated rate is its slope either way.
  #9 Kahan summation in sum/avg (2.54): floats are compared with a
     relative tolerance of 1e-6.
Nothing else of the list applies to these queries (no regex with newlines,
no holt_winters, no UTF-8 names, no experimental functions, no native
histograms)."""
import gzip
import json
import math
import subprocess
import time
import urllib.parse

import pytest
import requests

from conftest import TEXT, Proc, free_port, wait_until

# ---- the shared target -------------------------------------------------------------

T0 = time.time()
SLOPES = {  # per second
    'http_requests_total{code="200",method="get"}': 10.0,
    'http_requests_total{code="500",method="get"}': 0.5,
    'http_requests_total{code="200",method="post"}': 2.0,
    'request_duration_seconds_bucket{le="0.1"}': 2.0,
    'request_duration_seconds_bucket{le="0.5"}': 6.0,
    'request_duration_seconds_bucket{le="1.0"}': 9.0,
    'request_duration_seconds_bucket{le="+Inf"}': 10.0,
    'request_duration_seconds_sum': 3.0,
    'request_duration_seconds_count': 10.0,
}


def exposition():
    # Growing series carry the time their value was computed for as an
    # explicit timestamp, so both servers store points exactly on the same
    # lines however late their scrape requests arrive.
    ms = int(time.time() * 1000)
    t = ms / 1000 - T0
    lines = [
        "# HELP http_requests_total Requests served.",
        "# TYPE http_requests_total counter",
    ]
    for series, slope in SLOPES.items():
        if series.startswith("http_requests_total"):
            lines.append(f"{series} {slope * t!r} {ms}")
    lines += [
        "# HELP request_duration_seconds Request latency.",
        "# TYPE request_duration_seconds histogram",
    ]
    for series, slope in SLOPES.items():
        if series.startswith("request_duration"):
            lines.append(f"{series} {slope * t!r} {ms}")
    lines += [
        "# HELP temperature_celsius Room temperature.",
        "# TYPE temperature_celsius gauge",
        'temperature_celsius{room="kitchen"} 21.5',
        'temperature_celsius{room="office"} 19.25',
        'temperature_celsius{room="cellar"} 12',
        "# HELP queue_depth Items waiting.",
        "# TYPE queue_depth gauge",
        f"queue_depth {100 + 0.2 * t!r} {ms}",
    ]
    return ("\n".join(lines) + "\n").encode()


def serve_metrics(handler):
    body = exposition()
    handler.send_response(200)
    handler.send_header("Content-Type", TEXT)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def scrape_config(target, interval="1s"):
    return f"""
global:
  scrape_interval: {interval}
scrape_configs:
  - job_name: app
    metrics_path: /metrics
    static_configs:
      - targets: ['{target.addr}']
"""


def start_prometheus(tmp_path, procs, config_text, extra_args=()):
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(config_text)
    prom = Proc(["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={tmp_path / 'prom-data'}", *extra_args],
                str(tmp_path / "prometheus.log"))
    procs.append(prom)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/-/ready", timeout=2).status_code == 200, timeout=30,
               what="Prometheus ready")
    return url


def promtool(*args):
    p = subprocess.run(["promtool", "query", "-o", "json", *args], capture_output=True, timeout=60)
    assert p.returncode == 0, (args, p.stdout.decode(), p.stderr.decode())
    return json.loads(p.stdout)


def close(a, b, rel=1e-6):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b)) or abs(a - b) < 1e-9


def key(metric):
    return json.dumps(metric, sort_keys=True)


def compare_vectors(prom, sw):
    """Same label sets, values within tolerance, same timestamps (or the
    same scalar)."""
    problems = []
    if prom and not isinstance(prom[0], dict):
        if float(prom[0]) != float(sw[0]) or not close(prom[1], sw[1]):
            problems.append(f"scalar {prom} vs {sw}")
        return problems
    p = {key(s["metric"]): s["value"] for s in prom}
    s = {key(s["metric"]): s["value"] for s in sw}
    if set(p) != set(s):
        problems.append(f"label sets differ: prometheus {sorted(p)} sidewatch {sorted(s)}")
    for k in set(p) & set(s):
        if float(p[k][0]) != float(s[k][0]):
            problems.append(f"{k}: timestamp {p[k][0]} vs {s[k][0]}")
        if not close(p[k][1], s[k][1]):
            problems.append(f"{k}: value {p[k][1]} vs {s[k][1]}")
    return problems


def compare_matrices(prom, sw):
    problems = []
    p = {key(s["metric"]): s["values"] for s in prom}
    s = {key(s["metric"]): s["values"] for s in sw}
    if set(p) != set(s):
        problems.append(f"label sets differ: prometheus {sorted(p)} sidewatch {sorted(s)}")
    for k in set(p) & set(s):
        pt = [float(t) for t, _ in p[k]]
        st = [float(t) for t, _ in s[k]]
        if pt != st:
            problems.append(f"{k}: steps {pt} vs {st}")
            continue
        for (t, pv), (_, sv) in zip(p[k], s[k]):
            if not close(pv, sv):
                problems.append(f"{k} @{t}: {pv} vs {sv}")
    return problems


# Dashboard-style queries; every one must give a non-empty, equal answer
# (except the absent() of a present series, which must be empty on both).
INSTANT = [
    'rate(http_requests_total[10s])',
    'sum by (code) (rate(http_requests_total[10s]))',
    'sum without (method) (rate(http_requests_total{code="200"}[10s]))',
    'sum(rate(http_requests_total[10s])) by (method)',
    'rate(http_requests_total{code="500"}[10s]) / on(method) group_left sum by (method) (rate(http_requests_total[10s]))',
    'histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[10s])))',
    'histogram_quantile(0.5, rate(request_duration_seconds_bucket[10s]))',
    'rate(request_duration_seconds_sum[10s]) / rate(request_duration_seconds_count[10s])',
    'topk(2, rate(http_requests_total[10s]))',
    'bottomk(1, temperature_celsius)',
    'topk(1, temperature_celsius) by (room)',
    'label_replace(rate(http_requests_total[10s]), "status", "${1}xx", "code", "(.).*")',
    'label_replace(temperature_celsius, "floor", "ground", "room", "kitchen|office")',
    'absent(nonexistent_metric{job="app"})',
    'absent(temperature_celsius{job="app"})',
    'predict_linear(queue_depth[10s], 3600)',
    'deriv(queue_depth[10s])',
    'temperature_celsius > 15',
    'avg(temperature_celsius)',
    'max by (job) (up)',
    'sum(increase(http_requests_total[10s])) / sum(increase(http_requests_total[10s]))',
    'count by (job) (temperature_celsius)',
    'sort_desc(sum by (code) (rate(http_requests_total[10s])))',
    'clamp_max(temperature_celsius, 20)',
    'round(rate(http_requests_total[10s]), 0.5)',
    'time() - time()',
    'vector(1)',
]
RANGE = [
    'sum by (code) (rate(http_requests_total[10s]))',
    'histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[10s])))',
    'topk(1, rate(http_requests_total[10s]))',
    'label_replace(rate(http_requests_total{code="500"}[10s]), "c", "$1", "code", "(.*)")',
    'absent(nonexistent_metric)',
    'predict_linear(queue_depth[10s], 600)',
    'temperature_celsius',
    'scalar(sum(rate(http_requests_total[10s])))',
]


def test_promtool_answers_match_prometheus(start_sidewatch, target, tmp_path, procs):
    target.routes["/metrics"] = serve_metrics
    cfg = scrape_config(target)
    prom = start_prometheus(tmp_path, procs, cfg)
    sw = start_sidewatch(cfg)

    def both_scraping():
        q = {"query": 'up{job="app"} == 1'}
        return all(requests.get(u + "/api/v1/query", params=q, timeout=2).json()["data"]["result"]
                   for u in (prom, sw.url))
    wait_until(both_scraping, timeout=30, what="both servers scraping the target")
    both = time.time()  # both have samples from here on
    # Windows are 10s: every evaluation time is at least 12s after `both`,
    # so each window is covered by samples of both servers (rate() then
    # extrapolates a linear counter to its exact slope).
    r_start = round(both + 12, 3)
    r_end = t_eval = round(r_start + 10, 3)
    time.sleep(max(0, t_eval + 1.5 - time.time()))

    problems = []
    for expr in INSTANT:
        p = promtool("instant", "--time", str(t_eval), prom, expr)
        s = promtool("instant", "--time", str(t_eval), sw.url, expr)
        diff = compare_vectors(p, s)
        if not p and "absent(temperature" not in expr:
            diff.append("prometheus returned nothing (the test is broken)")
        problems += [f"instant {expr}: {d}" for d in diff]
    for expr in RANGE:
        args = ["range", "--start", str(r_start), "--end", str(r_end), "--step", "2s"]
        p = promtool(*args, prom, expr)
        s = promtool(*args, sw.url, expr)
        diff = compare_matrices(p, s)
        if not p:
            diff.append("prometheus returned nothing (the test is broken)")
        problems += [f"range {expr}: {d}" for d in diff]

    # Series sets and label values are compared exactly.
    for matches in (["http_requests_total"], ["up", 'temperature_celsius{room!="cellar"}'],
                    ['{__name__=~"request_duration_seconds.*", le!="0.1"}'], ['{job="app"}']):
        args = ["series"] + [f"--match={m}" for m in matches]
        p = sorted(promtool(*args, prom), key=key)
        s = sorted(promtool(*args, sw.url), key=key)
        if p != s or not p:
            problems.append(f"series {matches}: prometheus {p} sidewatch {s}")
    for name, matches in (("code", []), ("le", []), ("room", []), ("__name__", ['{job="app"}']),
                          ("job", ["temperature_celsius"]), ("method", ['http_requests_total{code="500"}'])):
        args = ["labels"] + [f"--match={m}" for m in matches]
        p = promtool(*args, prom, name)
        s = promtool(*args, sw.url, name)
        if p != s or not p:
            problems.append(f"labels {name} {matches}: prometheus {p} sidewatch {s}")

    # The raw API answers have the same shape, key for key.
    for path, params in (("/api/v1/query", {"query": "sum by (code) (rate(http_requests_total[10s]))",
                                            "time": t_eval}),
                         ("/api/v1/query_range", {"query": "temperature_celsius", "start": r_start,
                                                  "end": r_end, "step": 5}),
                         ("/api/v1/query", {"query": "scalar(vector(1.5))", "time": t_eval}),
                         ("/api/v1/query", {"query": '"text"', "time": t_eval})):
        p = requests.get(prom + path, params=params, timeout=10).json()
        s = requests.get(sw.url + path, params=params, timeout=10).json()
        if p["data"]["resultType"] != s["data"]["resultType"] or set(p) != set(s):
            problems.append(f"{path} {params}: prometheus {p} sidewatch {s}")
        if p["data"]["resultType"] in ("scalar", "string") and p["data"]["result"] != s["data"]["result"]:
            problems.append(f"{path} {params}: prometheus {p} sidewatch {s}")
    assert not problems, "\n".join(problems)
    assert sw.alive()


# ---- (b) Grafana ---------------------------------------------------------------------

@pytest.fixture
def sidewatch_with_data(start_sidewatch, target):
    target.routes["/metrics"] = serve_metrics
    sw = start_sidewatch(scrape_config(target))
    wait_until(lambda: len(sw.federate_samples("http_requests_total")) == 3, what="scraped")
    time.sleep(3)  # a few scrapes, for rates
    return sw


def form_post(sw, path, data, **kw):
    return requests.post(sw.url + path, data=data, headers={"Accept-Encoding": "gzip"}, timeout=10,
                         **kw)


def check_envelope(r, status=200):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json", r.headers
    body = r.json()
    assert body["status"] == ("success" if status == 200 else "error"), body
    return body


def test_grafana_dashboard_load(sidewatch_with_data):
    sw = sidewatch_with_data
    now = int(time.time())
    start, end = now - 3600, now

    # Save & test / feature detection.
    b = check_envelope(requests.get(sw.url + "/api/v1/status/buildinfo", timeout=10))
    assert set(b["data"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}

    # Label names for the query editor (POST form, as Grafana does).
    b = check_envelope(form_post(sw, "/api/v1/labels", {"start": start, "end": end}))
    assert {"__name__", "code", "instance", "job", "le", "method", "room"} <= set(b["data"])
    assert b["data"] == sorted(b["data"])

    # Metric names.
    r = requests.get(sw.url + "/api/v1/label/__name__/values", params={"start": start, "end": end},
                     headers={"Accept-Encoding": "gzip"}, timeout=10)
    b = check_envelope(r)
    assert "http_requests_total" in b["data"] and "up" in b["data"]

    # Series for template variables and the metrics browser.
    b = check_envelope(form_post(sw, "/api/v1/series", {"match[]": ['http_requests_total{code="200"}', "up"],
                                                         "start": start, "end": end}))
    assert all(isinstance(s, dict) and "__name__" in s for s in b["data"])
    assert {s["__name__"] for s in b["data"]} == {"http_requests_total", "up"}
    assert len(b["data"]) == 3

    # Label values with a matcher (template variable query).
    b = check_envelope(requests.get(sw.url + "/api/v1/label/method/values",
                                    params={"match[]": "http_requests_total", "start": start, "end": end},
                                    timeout=10))
    assert b["data"] == ["get", "post"]

    # Metadata for the hover help.
    b = check_envelope(requests.get(sw.url + "/api/v1/metadata", timeout=10))
    assert b["data"]["http_requests_total"] == [{"type": "counter", "unit": "", "help": "Requests served."}]
    assert b["data"]["request_duration_seconds"][0]["type"] == "histogram"

    # The panels: range queries with a form body.
    b = check_envelope(form_post(sw, "/api/v1/query_range", {
        "query": "sum by (code) (rate(http_requests_total[5s]))",
        "start": now - 60, "end": now, "step": 1}))
    assert b["data"]["resultType"] == "matrix"
    res = b["data"]["result"]
    assert {tuple(s["metric"].items()) for s in res} == {(("code", "200"),), (("code", "500"),)}
    for s in res:
        for t, v in s["values"]:
            assert isinstance(t, (int, float)) and isinstance(v, str)
        # Below the slope while the 5s window is not yet covered (extrapolation).
        assert 0 < float(s["values"][-1][1]) <= (12.0 if s["metric"]["code"] == "200" else 0.5) * 1.01

    # Stat panels: instant queries.
    b = check_envelope(form_post(sw, "/api/v1/query", {"query": "sum(up)", "time": now}))
    assert b["data"] == {"resultType": "vector", "result": [{"metric": {}, "value": [now, "1"]}]}

    # Grafana's "instant" table query with a step and a small timeout.
    b = check_envelope(form_post(sw, "/api/v1/query", {"query": "temperature_celsius", "time": now,
                                                       "timeout": "30s"}))
    assert len(b["data"]["result"]) == 3

    # Exemplars: empty, not an error.
    b = check_envelope(form_post(sw, "/api/v1/query_exemplars", {"query": "up", "start": start, "end": end}))
    assert b["data"] == []

    # Annotations reach the response as infos.
    b = check_envelope(requests.get(sw.url + "/api/v1/query", params={"query": "rate(temperature_celsius[1m])"},
                                    timeout=10))
    assert b["infos"] and "might not be a counter" in b["infos"][0]

    # Other status pages Grafana and promtool use.
    check_envelope(requests.get(sw.url + "/api/v1/status/runtimeinfo", timeout=10))
    b = check_envelope(requests.get(sw.url + "/api/v1/targets", timeout=10))
    t = b["data"]["activeTargets"][0]
    assert set(t) == {"discoveredLabels", "labels", "scrapePool", "scrapeUrl", "globalUrl", "lastError",
                      "lastScrape", "lastScrapeDuration", "health", "scrapeInterval", "scrapeTimeout"}
    assert t["health"] == "up" and t["scrapePool"] == "app" and t["scrapeInterval"] == "1s"
    b = check_envelope(requests.get(sw.url + "/api/v1/status/tsdb", timeout=10))
    assert b["data"]["headStats"]["numSeries"] >= 14
    b = check_envelope(requests.get(sw.url + "/api/v1/format_query",
                                    params={"query": "sum(rate(x[5m]))by(a)"}, timeout=10))
    assert b["data"] == "sum by (a) (rate(x[5m]))"
    assert sw.alive()


def test_large_range_is_streamed(sidewatch_with_data):
    """A range result too large to build in memory comes chunked, gzip or
    not, and is valid JSON either way."""
    sw = sidewatch_with_data
    time.sleep(2)  # samples older than 3s
    now = int(time.time())
    params = {"query": '{__name__=~"http_requests_total|request_duration_seconds_bucket|temperature_celsius"}',
              "start": now - 3, "end": now, "step": "0.001"}
    r = requests.get(sw.url + "/api/v1/query_range", params=params, stream=True,
                     headers={"Accept-Encoding": "gzip"}, timeout=60)
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked" and r.headers["Content-Encoding"] == "gzip"
    raw = r.raw.read()
    body = json.loads(gzip.decompress(raw))
    series = body["data"]["result"]
    assert len(series) == 10
    assert [len(s["values"]) for s in series] == [3001] * 10  # 30,010 points
    r = requests.get(sw.url + "/api/v1/query_range", params=params, headers={"Accept-Encoding": "identity"},
                     timeout=60)
    assert "Content-Encoding" not in r.headers
    assert r.json()["data"]["result"] == series
    assert sw.alive()


# ---- (c) bad input ----------------------------------------------------------------------

def test_bad_input(sidewatch_with_data):
    sw = sidewatch_with_data
    get = lambda path, **params: requests.get(sw.url + path, params=params, timeout=10)

    def bad(r, fragment, status=400, etype="bad_data"):
        b = check_envelope(r, status)
        assert b["errorType"] == etype and fragment in b["error"], b

    # Malformed queries: bad_data with the parser's position.
    bad(get("/api/v1/query", query="sum(rate(x[5m])"),
        'invalid parameter "query": 1:16: parse error: unclosed left parenthesis')
    bad(get("/api/v1/query", query="up{job=}"), 'invalid parameter "query": 1:8: parse error:')
    bad(get("/api/v1/query", query="rate(up)"), 'invalid parameter "query": 1:6: parse error: expected type range vector')
    bad(get("/api/v1/query", query="rate(x[1000y])"), 'invalid parameter "query": 1:')
    bad(get("/api/v1/query", query="x[5m] offset"), 'invalid parameter "query": 1:')
    bad(get("/api/v1/query", query=""), 'invalid parameter "query": 1:1: parse error')
    bad(get("/api/v1/query", query="{}"), "vector selector must contain at least one non-empty matcher")
    bad(get("/api/v1/query", query="a" * 70000 + "{"), 'invalid parameter "query"')
    # Missing and invalid parameters.
    bad(get("/api/v1/query", query="up", time="yesterday"),
        'invalid parameter "time": invalid time value for \'time\': cannot parse "yesterday" to a valid timestamp')
    bad(get("/api/v1/query_range", query="up"), 'invalid parameter "start": cannot parse "" to a valid timestamp')
    bad(get("/api/v1/query_range", query="up", start="x", end=1, step=1),
        'invalid parameter "start": cannot parse "x" to a valid timestamp')
    bad(get("/api/v1/query_range", query="up", start=10, end=5, step=1),
        'invalid parameter "end": end timestamp must not be before start time')
    bad(get("/api/v1/query_range", query="up", start=1, end=5, step="abc"),
        'invalid parameter "step": cannot parse "abc" to a valid duration')
    bad(get("/api/v1/query_range", query="up", start=1, end=5, step=-1),
        "zero or negative query resolution step widths are not accepted. Try a positive integer")
    bad(get("/api/v1/query_range", query="up", start=1, end=5, step=0),
        "zero or negative query resolution step widths are not accepted. Try a positive integer")
    bad(get("/api/v1/query", query="up", limit=-1), 'invalid parameter "limit": limit must be non-negative')
    bad(get("/api/v1/query", query="up", timeout="soon"), 'invalid parameter "timeout": cannot parse "soon"')
    bad(get("/api/v1/series"), "no match[] parameter provided")
    bad(get("/api/v1/series", **{"match[]": "up{"}), 'invalid parameter "match[]": 1:4: parse error')
    bad(get("/api/v1/labels", **{"match[]": '{job=~".*"}'}), "match[] must contain at least one non-empty matcher")
    bad(get("/api/v1/label/%FF/values"), 'invalid label name: "\\xff"')
    bad(get("/api/v1/status/tsdb", limit=0), "limit must be a positive number")
    # Huge ranges and steps.
    bad(get("/api/v1/query_range", query="up", start=0, end=2e9, step=1),
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
    # Go's Sub saturates at 292 years: 292y / 1d points is over the limit ...
    bad(get("/api/v1/query_range", query="up", start=0, end=1e12, step="1d"), "exceeded maximum resolution")
    # ... 292y / 1y is not.
    check_envelope(get("/api/v1/query_range", query="up", start=0, end=1e12, step="1y"), 200)
    # Times Prometheus would wrap around (int64 milliseconds): refused.
    bad(get("/api/v1/query_range", query="up", start=-1e18, end=1e18, step="1y"),
        'invalid parameter "query": time or duration out of range')
    bad(get("/api/v1/query_range", query="up", start=0, end=1, step="1e300"), "It overflows int64")
    # 1000y overflows a time.Duration.
    bad(get("/api/v1/query_range", query="up", start=0, end=1e9, step="1000y"),
        'invalid parameter "step": cannot parse "1000y" to a valid duration')
    r = get("/api/v1/query_range", query="up", start=0, end=1e9, step="100y")
    assert check_envelope(r)["data"]["resultType"] == "matrix"  # one point per series at most
    r = get("/api/v1/query", query="up", time=1e15)
    assert check_envelope(r)["data"]["result"] == []
    # 404 and 405 as Prometheus's router.
    r = get("/api/v1/nope")
    assert r.status_code == 404 and r.text == "404 page not found\n"
    r = requests.post(sw.url + "/api/v1/targets", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, OPTIONS"
    assert requests.get(sw.url + "/-/healthy", timeout=5).status_code == 200
    assert sw.alive()


def test_max_samples_and_timeout(start_sidewatch, target):
    """--query.max-samples gives 422 execution, --query.timeout 503 timeout,
    with Prometheus's messages; the server keeps serving."""
    target.routes["/metrics"] = serve_metrics
    sw = start_sidewatch(scrape_config(target), extra_args=["--query.max-samples=100", "--query.timeout=50ms"])
    wait_until(lambda: len(sw.federate_samples("http_requests_total")) == 3, what="scraped")
    time.sleep(2)
    ok = requests.get(sw.url + "/api/v1/query", params={"query": "sum(http_requests_total)"}, timeout=10)
    assert check_envelope(ok)["data"]["result"]
    # Hundreds of subquery steps x 3 series of points held at once.
    r = requests.get(sw.url + "/api/v1/query", params={"query": "http_requests_total[5m:10ms]"}, timeout=10)
    b = check_envelope(r, 422)
    assert b == {"status": "error", "errorType": "execution",
                 "error": "query processing would load too many samples into memory in query execution"}, b
    # A long subquery (7.2M steps) runs into the 50ms timeout.
    r = requests.get(sw.url + "/api/v1/query",
                     params={"query": "max_over_time(sum(rate(http_requests_total[1s]))[2h:1ms])"}, timeout=30)
    b = check_envelope(r, 503)
    assert b["errorType"] == "timeout" and b["error"].startswith("query timed out in "), b
    # The timeout parameter shortens it further.
    r = requests.get(sw.url + "/api/v1/query", params={"query": "up", "timeout": "0"}, timeout=10)
    assert check_envelope(r, 503)["errorType"] == "timeout"
    ok = requests.get(sw.url + "/api/v1/query", params={"query": "sum(http_requests_total)"}, timeout=10)
    assert check_envelope(ok)["data"]["result"]
    assert sw.alive()
