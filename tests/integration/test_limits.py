"""Limits on input that targets and users control (issue 10, item 3), over
HTTP against the real binary: each limit refuses what crosses it, and the
metric that counts its refusals moves on /metrics (and only that one).

Scrape: body_size_limit and --scrape.max-body-bytes, sample_limit,
label_limit / label_name_length_limit / label_value_length_limit (also
from `global:`), target_limit. Queries: --query.max-samples,
--query.timeout (the timeout parameter), 11,000 points per series,
--query.max-regex-bytes. Rule files: --rules.max-rules-per-group.
(Notification queue length and API request size have their own tests:
tests/unit/test_notify.c test_max_age_and_capacity and
test_web_security.py test_server_limits.)"""
import re

import requests

from conftest import TEXT, wait_until


def metric(sw, series):
    """The value of one exposed series ('name' or 'name{labels}'), or None."""
    for line in sw.metrics().text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def target_errors(sw):
    """{job: lastError} of the unhealthy targets."""
    r = requests.get(sw.url + "/api/v1/targets", timeout=10).json()
    return {t["labels"]["job"]: t["lastError"] for t in r["data"]["activeTargets"]
            if t["health"] == "down"}


SCRAPE_COUNTERS = [
    "sidewatch_scrapes_exceeded_body_size_limit_total",
    "sidewatch_scrapes_exceeded_sample_limit_total",
    "sidewatch_scrapes_exceeded_label_limits_total",
    "sidewatch_scrape_pool_exceeded_target_limit_total",
]


def test_scrape_limits(start_sidewatch, target):
    target.routes["/big"] = (200, {"Content-Type": TEXT},
                             b"".join(b"big_%06d 1\n" % i for i in range(400)))  # 4.4 kB
    target.routes["/many"] = (200, {"Content-Type": TEXT},
                              b"".join(b"many_%d 1\n" % i for i in range(30)))
    target.routes["/labels"] = (200, {"Content-Type": TEXT}, b'm{a="1",b="2",c="3",d="4"} 1\n')
    target.routes["/ok"] = (200, {"Content-Type": TEXT}, b"ok_metric 1\n")
    a = target.addr
    port = a.rsplit(":", 1)[1]
    sw = start_sidewatch(f"""
global:
  scrape_interval: 500ms
  scrape_timeout: 500ms
  label_limit: 6
scrape_configs:
  - job_name: body
    metrics_path: /big
    body_size_limit: 1KB
    static_configs: [{{targets: ['{a}']}}]
  - job_name: cap
    metrics_path: /big
    static_configs: [{{targets: ['{a}']}}]
  - job_name: samples
    metrics_path: /many
    sample_limit: 20
    static_configs: [{{targets: ['{a}']}}]
  - job_name: labels_global
    metrics_path: /labels
    static_configs: [{{targets: ['{a}']}}]
  - job_name: targets
    metrics_path: /ok
    target_limit: 1
    static_configs: [{{targets: ['{a}', 'localhost:{port}']}}]
  - job_name: fine
    metrics_path: /ok
    static_configs: [{{targets: ['{a}']}}]
""", extra_args=["--scrape.max-body-bytes=2048"])
    want = {
        "body": "body size limit exceeded",
        "cap": "body size limit exceeded (--scrape.max-body-bytes=2048)",
        "samples": "sample limit exceeded",
        "labels_global": "label_limit exceeded (metric: m, number of labels: 7, limit: 6)",
        "targets": "target_limit exceeded (number of targets: 2, limit: 1)",
    }
    errs = wait_until(lambda: (lambda e: e if set(want) <= set(e) else None)(target_errors(sw)),
                      what="every limited target down")
    for job, reason in want.items():
        assert errs[job] == reason, (job, errs[job])
    assert "fine" not in errs
    assert metric(sw, "sidewatch_scrapes_exceeded_body_size_limit_total") >= 2
    assert metric(sw, "sidewatch_scrapes_exceeded_sample_limit_total") >= 1
    assert metric(sw, "sidewatch_scrapes_exceeded_label_limits_total") >= 1
    assert metric(sw, "sidewatch_scrape_pool_exceeded_target_limit_total") >= 1
    # The flag is listed with the others.
    flags = requests.get(sw.url + "/api/v1/status/flags", timeout=10).json()["data"]
    assert flags["scrape.max-body-bytes"] == "2048"
    assert flags["query.max-regex-bytes"] == "65536"
    assert flags["rules.max-rules-per-group"] == "10000"


def test_counters_start_at_zero(start_sidewatch):
    sw = start_sidewatch()
    for name in SCRAPE_COUNTERS:
        assert metric(sw, name) == 0, name
    for reason in ("max_samples", "timeout", "too_many_points", "regex_too_large"):
        assert metric(sw, f'sidewatch_queries_refused_total{{reason="{reason}"}}') == 0
    assert metric(sw, "sidewatch_rule_groups_refused_total") == 0
    assert metric(sw, "sidewatch_regex_match_limit_hits_total") is not None
    for reason in ("unauthorized", "client_certificate", "body_too_large", "header_timeout"):
        assert metric(sw, f'sidewatch_http_requests_refused_total{{reason="{reason}"}}') == 0


REASONS = ("max_samples", "timeout", "too_many_points", "regex_too_large")


def refused(sw):
    return {r: metric(sw, f'sidewatch_queries_refused_total{{reason="{r}"}}') for r in REASONS}


def test_query_limits(start_sidewatch, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT},
                           b"".join(b'x{i="%d"} 1\n' % i for i in range(5)))
    sw = start_sidewatch(f"""
global:
  scrape_interval: 200ms
scrape_configs:
  - job_name: t
    metrics_path: /m
    static_configs: [{{targets: ['{target.addr}']}}]
""", extra_args=["--query.max-samples=50", "--query.max-regex-bytes=16"])
    q = sw.url + "/api/v1/query"
    # 12 scrapes of 5 series: 60 samples in the last minute, over 50 (the
    # other queries look back 1s only, well under).
    wait_until(lambda: requests.get(q, params={"query": 'count_over_time(x{i="0"}[1m]) >= 12'},
                                    timeout=10).json()["data"]["result"],
               what="12 scrapes of x")
    before = refused(sw)
    assert all(v == 0 for v in before.values()), before

    def expect(reason, status, **params):
        r = requests.get(sw.url + params.pop("path", "/api/v1/query"), params=params, timeout=10)
        assert r.status_code == status, r.text
        now = refused(sw)
        for k in REASONS:
            assert now[k] == before[k] + (1 if k == reason else 0), (reason, k, now, before)
        before.update(now)
        return r

    # Within every limit: nothing counted.
    r = expect(None, 200, query='x{i=~"[0-4]|0123456789"}', lookback_delta="1s")
    assert len(r.json()["data"]["result"]) == 5
    # --query.max-samples
    r = expect("max_samples", 422, query="sum(count_over_time(x[1m]))")
    assert "too many samples" in r.json()["error"]
    # --query.timeout (here the request's smaller timeout)
    r = expect("timeout", 503, query="x", timeout="0s")
    assert r.json()["errorType"] == "timeout"
    # 11,000 points per series
    r = expect("too_many_points", 400, path="/api/v1/query_range", query="vector(1)",
               start="0", end="20000", step="1")
    assert "11,000 points" in r.json()["error"]
    # --query.max-regex-bytes: in a query, in label_replace, in match[]
    r = expect("regex_too_large", 400, query='x{i=~"[0-4]|0123456789a"}')
    assert "regular expression is too large (17 bytes, the limit is 16 bytes)" in r.json()["error"]
    expect("regex_too_large", 400,
           query='label_replace(x, "d", "$1", "i", "(.*)|0123456789abc")')
    expect("regex_too_large", 400, path="/api/v1/series", **{"match[]": 'x{i=~"[0-4]|0123456789a"}'})
    # /federate's match[] too (served outside /api/v1)
    r = expect(None, 200, path="/federate", **{"match[]": 'x{i=~"[0-4]|0123456789"}'})
    assert sum(1 for line in r.text.splitlines() if line.startswith("x{")) == 5, r.text
    r = expect("regex_too_large", 400, path="/federate", **{"match[]": 'x{i=~"[0-4]|0123456789a"}'})
    assert "regular expression is too large" in r.text, r.text
    # Other bad queries are not limit refusals.
    expect(None, 400, query="sum(")


RULES = """groups:
  - name: g
    rules:
{rules}
"""


def rules_text(n):
    return RULES.format(rules="".join(f"      - record: r{i}\n        expr: vector({i})\n"
                                      for i in range(n)))


def test_rule_group_limit(start_sidewatch, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_text(2))
    sw = start_sidewatch(f"rule_files: ['{rules}']\n",
                         extra_args=["--rules.max-rules-per-group=2"])

    def rule_names():
        g = requests.get(sw.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        return sorted(r["name"] for grp in g for r in grp["rules"])

    assert rule_names() == ["r0", "r1"]
    assert metric(sw, "sidewatch_rule_groups_refused_total") == 0
    # Three rules in the group: the reload is refused, naming the limit;
    # the previous rules stay and the refusal is counted.
    rules.write_text(rules_text(3))
    r = requests.post(sw.url + "/-/reload", timeout=10)
    assert r.status_code == 500, r.text
    assert re.search(r'group "g" has 3 rules, more than the limit of 2 '
                     r'\(--rules.max-rules-per-group\)', r.text), r.text
    assert metric(sw, "sidewatch_rule_groups_refused_total") == 1
    assert metric(sw, "sidewatch_config_last_reload_successful") == 0
    assert rule_names() == ["r0", "r1"]
    # Back within the limit: accepted.
    rules.write_text(rules_text(1))
    assert requests.post(sw.url + "/-/reload", timeout=10).status_code == 200
    assert rule_names() == ["r0"]
    assert metric(sw, "sidewatch_rule_groups_refused_total") == 1


def test_rule_group_limit_at_start(tmp_path, procs):
    from conftest import Sidewatch
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_text(3))
    sw = Sidewatch(tmp_path, f"rule_files: ['{rules}']\n",
                   extra_args=["--rules.max-rules-per-group=2"])
    procs.append(sw)
    rc = sw.p.wait(timeout=30)
    assert rc != 0
    assert "more than the limit of 2 (--rules.max-rules-per-group)" in sw.output()
