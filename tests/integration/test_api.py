"""HTTP endpoints: /federate's matching, errors and external labels;
/metrics negotiation and compression; request limits."""
import gzip

import requests

from conftest import TEXT, wait_until


def test_federate_selectors_and_errors(start_sidewatch, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT},
                           b'# TYPE req_total counter\nreq_total{code="200"} 5\nreq_total{code="500"} 1\n'
                           b'temp{instance="x"} 3\n')
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
  external_labels:
    region: eu
    instance: ext
scrape_configs:
  - job_name: app
    metrics_path: /m
    honor_labels: true
    static_configs:
      - targets: ['{target.addr}']
""")
    wait_until(lambda: sw.federate_samples('req_total'), what="scraped")
    # Overlapping match[] give each series once; sorted by metric name.
    text = sw.federate('req_total{code="200"}', 'req_total', '{__name__=~"temp|req_total",job="app"}')
    lines = [l for l in text.splitlines() if not l.startswith("#")]
    assert len(lines) == 3, text
    assert text.count("# TYPE req_total untyped") == 1 and text.index("req_total") < text.index("temp")
    # Series with their own instance keep it; the others get the external one.
    assert f'req_total{{code="200",instance="{target.addr}",job="app",region="eu"}} 5 ' in text
    assert 'temp{instance="x",job="app",region="eu"} 3 ' in text
    # Regex, negative and UTF-8 quoted selectors.
    assert len(sw.federate_samples('{__name__="req_total",code!="500"}')) == 1
    assert len(sw.federate_samples('{"req_total", code=~"5.."}')) == 1
    # No match[]: nothing, like Prometheus.
    r = requests.get(sw.url + "/federate", timeout=5)
    assert r.status_code == 200 and r.text == ""
    # Bad selectors are 400 with the reason.
    for bad, reason in [('up{job="x"', "parse error"), ('{job=""}', "non-empty matcher"),
                        ('up{a=~"("}', "error parsing regexp")]:
        r = requests.get(sw.url + "/federate", params={"match[]": bad}, timeout=5)
        assert r.status_code == 400 and reason in r.text, (bad, r.status_code, r.text)
    assert sw.alive()


def test_metrics_negotiation_and_gzip(start_sidewatch):
    sw = start_sidewatch()
    r = requests.get(sw.url + "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
    assert r.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(r.raw.read()).decode()
    assert "# TYPE sidewatch_build_info gauge" in body
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    r = requests.get(sw.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                     timeout=5)
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")
    assert "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total " in r.text
    # Prometheus's Accept header with the protobuf protocol first (scrape_native_histograms).
    proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
    r = requests.get(sw.url + "/metrics", timeout=5, headers={
        "Accept": proto + ";q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1"})
    assert r.headers["Content-Type"] == ("application/vnd.google.protobuf; "
                                         "proto=io.prometheus.client.MetricFamily; encoding=delimited")
    # Length-delimited MetricFamily messages: walk the varint prefixes to the end.
    body, pos, names = r.content, 0, []
    while pos < len(body):
        n = shift = 0
        while True:
            b = body[pos]
            pos += 1
            n |= (b & 0x7f) << shift
            shift += 7
            if b < 0x80:
                break
        msg = body[pos:pos + n]
        assert len(msg) == n and msg[0] == 0x0a  # field 1 (name) first
        names.append(msg[2:2 + msg[1]].decode())
        pos += n
    assert "sidewatch_build_info" in names, names
    # Text still wins when the client prefers it.
    r = requests.get(sw.url + "/metrics", timeout=5, headers={"Accept": "text/plain;q=0.9," + proto + ";q=0.5"})
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_request_body_limit(start_sidewatch):
    sw = start_sidewatch()
    r = requests.post(sw.url + "/-/reload", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert r.status_code == 413
    assert requests.get(sw.url + "/-/healthy", timeout=5).status_code == 200
