"""The remote write 1.0 receiver (POST /api/v1/write, --web.enable-remote-write-receiver)
against a real Prometheus 2.42 sender: Prometheus scrapes a target served
here and remote-writes to sidewatch; afterwards every series and sample
Prometheus has for a time range must be in sidewatch (promtool queries both).
Then bad requests, written here byte by byte (protobuf wire format from
promproto.py, snappy as literal-only blocks), are each refused with their
status and reason, and store nothing; without the flag the endpoint answers
Prometheus's 404.
"""
import gzip
import time

import requests

from conftest import wait_until
from promproto import f_bytes, f_double, f_varint, varint
from test_promql_api import promtool, serve_metrics, start_prometheus

RW_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}
NO_SCRAPES = "scrape_configs: []\n"
FLAG = "--web.enable-remote-write-receiver"


# ---- a WriteRequest by hand ------------------------------------------------------------------

def pb_label(name, value):
    return f_bytes(1, name) + f_bytes(2, value)


def pb_series(labels, samples):
    """labels: [(name, value)] in the given order; samples: [(t_ms, v)]."""
    out = b""
    for n, v in labels:
        out += f_bytes(1, pb_label(n, v))
    for t, v in samples:
        out += f_bytes(2, f_double(1, v) + f_varint(2, t))
    return out


def pb_request(*series):
    return b"".join(f_bytes(1, s) for s in series)


def snappy(raw):
    """A valid snappy block holding raw as literals (no compression)."""
    out = bytearray(varint(len(raw)))
    for i in range(0, len(raw), 60):
        chunk = raw[i:i + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def post(sw, body, headers=RW_HEADERS, method="POST"):
    return requests.request(method, sw.url + "/api/v1/write", data=body, headers=headers,
                            timeout=30)


def series_of(sw, match):
    r = requests.get(sw.url + "/api/v1/series", params={"match[]": match}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


# ---- Prometheus 2.42 as the sender -------------------------------------------------------------

def test_prometheus_remote_writes_everything(start_sidewatch, target, tmp_path, procs):
    target.routes["/metrics"] = serve_metrics
    sw = start_sidewatch(NO_SCRAPES, extra_args=[FLAG])
    cfg = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{target.addr}']
remote_write:
  - url: {sw.url}/api/v1/write
    queue_config:
      batch_send_deadline: 200ms
      max_samples_per_send: 50
      min_backoff: 50ms
      max_backoff: 200ms
    metadata_config:
      send_interval: 1s
"""
    prom = start_prometheus(tmp_path, procs, cfg)
    # Prometheus applies discovered targets on a 5s tick: wait for the
    # first scrape, then let it scrape and send for a while.
    wait_until(lambda: promtool("instant", prom, 'up{job="app"}'), timeout=20,
               what="Prometheus scraping")
    start = time.time()
    time.sleep(5)
    end = int(time.time()) - 2  # a whole second that every sample of has been sent

    # Every raw sample of every series in (start - 5s, end]: a range
    # selector at `end` returns them as stored.
    sel = '{job="app"}'
    raw = f"{sel}[{end - int(start) + 5}s]"

    def samples(url):
        got = promtool("instant", "--time", str(end), url, raw)
        return {tuple(sorted(s["metric"].items())): s["values"] for s in got}

    want = samples(prom)
    assert len(want) >= 12, want  # the target's series and Prometheus's up, scrape_*
    assert min(len(v) for v in want.values()) >= 3, want
    wait_until(lambda: samples(sw.url) == want, timeout=20,
               what="sidewatch holding every sample Prometheus has")

    # The same values at every step of a range.
    def matrix(url):
        got = promtool("range", "--start", str(int(start)), "--end", str(end), "--step", "1s",
                       url, sel)
        return {tuple(sorted(s["metric"].items())): s["values"] for s in got}
    p, s = matrix(prom), matrix(sw.url)
    assert set(p) == set(s)
    for k in p:
        assert s[k] == p[k], (k, p[k], s[k])

    # Metadata came along (metadata_config.send_interval 1s).
    def metadata():
        r = requests.get(sw.url + "/api/v1/metadata", params={"metric": "http_requests_total"},
                         timeout=10).json()["data"]
        return r.get("http_requests_total")
    md = wait_until(metadata, timeout=15, what="metadata from Prometheus")
    assert md[0]["type"] == "counter" and md[0]["help"] == "Requests served.", md

    # Nothing failed on Prometheus's side.
    m = requests.get(prom + "/metrics", timeout=10).text
    failed = [ln for ln in m.splitlines()
              if ln.startswith("prometheus_remote_storage_samples_failed_total")]
    assert failed and all(float(ln.rsplit(" ", 1)[1]) == 0 for ln in failed), failed


# ---- bad requests -------------------------------------------------------------------------------

def test_bad_requests_are_refused(start_sidewatch):
    sw = start_sidewatch(NO_SCRAPES, extra_args=[FLAG])
    now = int(time.time() * 1000)
    good = pb_request(pb_series([("__name__", "rw_good"), ("job", "t")], [(now - 1000, 1.5)]))
    r = post(sw, snappy(good))
    assert r.status_code == 204, (r.status_code, r.text)

    def bad_series(name):
        return pb_series([("__name__", name), ("job", "t")], [(now, 2)])

    cases = [
        # (what, body, headers, status, reason fragment)
        ("malformed protobuf", snappy(pb_request(bad_series("rw_bad_proto")) + b"\x0b"),
         RW_HEADERS, 400, "protobuf: cannot decode the WriteRequest"),
        ("uncompressed", pb_request(bad_series("rw_bad_plain")), RW_HEADERS, 400, "snappy"),
        ("no Content-Encoding, uncompressed", pb_request(bad_series("rw_bad_plain2")),
         {"Content-Type": "application/x-protobuf"}, 400, "snappy"),
        ("gzip", gzip.compress(pb_request(bad_series("rw_bad_gzip"))),
         dict(RW_HEADERS, **{"Content-Encoding": "gzip"}), 415,
         "gzip encoding (compression) is not accepted by this server; only snappy is acceptable"),
        ("truncated snappy", snappy(pb_request(bad_series("rw_bad_trunc")))[:-7], RW_HEADERS, 400,
         "snappy: corrupt input"),
        ("decompressed size over 32 MiB", varint(40 << 20) + b"\x00", RW_HEADERS, 400,
         "decompressed size 40 MiB exceeds the limit of 32 MiB"),
        ("body over 32 MiB", b"\x00" * ((32 << 20) + 1), RW_HEADERS, 413,
         "request body exceeds the 33554432 bytes limit"),
        ("unsorted labels",
         snappy(pb_request(pb_series([("job", "t"), ("__name__", "rw_bad_sort")], [(now, 1)]))),
         RW_HEADERS, 400, "series 0: labels not sorted"),
        ("empty label name",
         snappy(pb_request(pb_series([("", "x"), ("__name__", "rw_bad_empty")], [(now, 1)]))),
         RW_HEADERS, 400, 'series 0: label name "" is empty'),
        ("duplicate label name",
         snappy(pb_request(bad_series("rw_bad_ok0"), pb_series(
             [("__name__", "rw_bad_dup"), ("a", "1"), ("a", "2")], [(now, 1)]))),
         RW_HEADERS, 400, 'series 1: duplicate label name "a"'),
        ("no metric name", snappy(pb_request(pb_series([("job", "rw_bad_noname")], [(now, 1)]))),
         RW_HEADERS, 400, "series 0: no metric name"),
        ("invalid UTF-8",
         snappy(pb_request(pb_series([("__name__", "rw_bad_utf8"), ("job", b"\xff")], [(now, 1)]))),
         RW_HEADERS, 400, 'series 0: value of label "job" is not valid UTF-8'),
        ("timestamps going backwards",
         snappy(pb_request(pb_series([("__name__", "rw_bad_order")], [(now, 1), (now - 5, 2)]))),
         RW_HEADERS, 400, "series 0: sample timestamps out of order"),
        ("an hour in the future",
         snappy(pb_request(pb_series([("__name__", "rw_bad_future")], [(now + 3600_000, 1)]))),
         RW_HEADERS, 400, "out of bounds"),
        ("text/plain", snappy(pb_request(bad_series("rw_bad_ctype"))),
         dict(RW_HEADERS, **{"Content-Type": "text/plain"}), 415,
         "expected application/x-protobuf as the first (media) part"),
        ("remote write 2.0", snappy(pb_request(bad_series("rw_bad_v2"))),
         dict(RW_HEADERS, **{"Content-Type":
                             "application/x-protobuf;proto=io.prometheus.write.v2.Request"}),
         415, "io.prometheus.write.v2.Request protobuf message is not accepted"),
    ]
    for what, body, headers, status, reason in cases:
        r = post(sw, body, headers)
        assert r.status_code == status, (what, r.status_code, r.text)
        assert reason in r.text, (what, r.text)
        assert r.headers["Content-Type"].startswith("text/plain"), (what, r.headers)

    # An explicit 1.0 message type is fine.
    ok_headers = dict(RW_HEADERS, **{"Content-Type":
                                     "application/x-protobuf;proto=prometheus.WriteRequest"})
    r = post(sw, snappy(pb_request(pb_series([("__name__", "rw_good2")], [(now, 3)]))), ok_headers)
    assert r.status_code == 204, r.text
    r = post(sw, b"", method="GET")
    assert r.status_code == 405

    # Nothing of any refused request was stored; the good ones were.
    assert series_of(sw, '{__name__=~"rw_bad.*"}') == []
    assert [s["__name__"] for s in series_of(sw, '{__name__=~"rw_good.*"}')] == \
        ["rw_good", "rw_good2"]
    got = promtool("instant", "--time", str(now / 1000), sw.url, "rw_good")
    assert [float(s["value"][1]) for s in got] == [1.5]

    # Resending the same request: the duplicate is dropped, not an error.
    r = post(sw, snappy(good))
    assert r.status_code == 204, r.text


def test_receiver_off_by_default(start_sidewatch):
    sw = start_sidewatch(NO_SCRAPES)
    now = int(time.time() * 1000)
    r = post(sw, snappy(pb_request(pb_series([("__name__", "rw_off")], [(now, 1)]))))
    assert r.status_code == 404
    assert r.text == ("remote write receiver needs to be enabled with "
                      "--web.enable-remote-write-receiver\n")
    assert series_of(sw, "rw_off") == []
