"""Bad scrape input: each broken target fails alone with up=0 and a clear
logged reason; a healthy target next to it keeps working and the process
keeps running."""
import time

import pytest

from conftest import OPENMETRICS, TEXT, wait_until

GOOD = b"# TYPE good_metric gauge\ngood_metric 42\n"


def truncated_mid_transfer(handler):
    # Promises 1000 bytes, sends 20, closes the connection.
    handler.send_response(200)
    handler.send_header("Content-Type", TEXT)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"good_metric 1\npartia")
    handler.wfile.flush()
    handler.close_connection = True


def slow(handler):
    time.sleep(3)
    handler.send_response(200)
    handler.send_header("Content-Type", TEXT)
    handler.send_header("Content-Length", "14")
    handler.end_headers()
    handler.wfile.write(b"good_metric 1\n")


# name: (response, reason expected in the log, extra scrape config)
CASES = {
    "garbage": ((200, {"Content-Type": TEXT}, b"<html><body>Not metrics</body></html>\n"),
                "expected a valid start token", ""),
    "truncated_body": ((200, {"Content-Type": TEXT}, b'good_metric 1\ncut_here{a="b'),
                       "expected label value", ""),
    "truncated_transfer": (truncated_mid_transfer, "transfer closed", ""),
    "wrong_content_type": ((200, {"Content-Type": "application/json"}, b'{"metrics": []}'),
                           'unsupported Content-Type \\"application/json\\"', ""),
    "no_content_type": ((200, {}, b"good_metric 1\n"), "unsupported Content-Type", ""),
    "huge_labels": ((200, {"Content-Type": TEXT},
                     b'huge{label="' + b"x" * (10 * 1024 * 1024) + b'"} 1\n'),
                    "label_value_length_limit exceeded", "label_value_length_limit: 1024"),
    "over_body_limit": ((200, {"Content-Type": TEXT}, b"m 1\n" * 300000), "body size limit exceeded",
                        "body_size_limit: 1MB"),
    "server_error": ((500, {"Content-Type": TEXT}, b"boom"), "server returned HTTP status 500", ""),
    "openmetrics_without_eof": ((200, {"Content-Type": OPENMETRICS}, b"a 1\n"),
                                "data does not end with # EOF", ""),
    "slow": (slow, "context deadline exceeded", ""),
    "too_many_labels": ((200, {"Content-Type": TEXT}, b'm{a="1",b="2",c="3"} 1\n'),
                        "label_limit exceeded (metric: m, number of labels: 6, limit: 5)", "label_limit: 5"),
    "long_label_name": ((200, {"Content-Type": TEXT}, b'm{averyveryverylongname="1"} 1\n'),
                        "label_name_length_limit exceeded (metric: m, label name: averyveryverylongname, "
                        "length: 21, limit: 10)", "label_name_length_limit: 10"),
    "too_many_samples": ((200, {"Content-Type": TEXT}, b"".join(b"s%d 1\n" % i for i in range(50))),
                         "sample limit exceeded", "sample_limit: 40"),
}


def test_each_bad_target_fails_alone(start_sidewatch, target):
    target.routes["/good"] = (200, {"Content-Type": TEXT}, GOOD)
    jobs = ""
    for name, (route, _, extra) in CASES.items():
        target.routes["/" + name] = route
        jobs += f"""
  - job_name: {name}
    metrics_path: /{name}
    {extra}
    static_configs:
      - targets: ['{target.addr}']
"""
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: good
    metrics_path: /good
    static_configs:
      - targets: ['{target.addr}']
{jobs}""")

    def all_scraped():
        s = sw.federate_samples('{__name__="up"}')
        return s if len(s) == len(CASES) + 1 else None
    ups = wait_until(all_scraped, what="every target scraped once")
    for series, (value, _) in ups.items():
        job = series.split('job="')[1].split('"')[0]
        assert value == (1.0 if job == "good" else 0.0), series
    # The healthy target's samples are stored; no sample of a failed scrape is.
    assert list(sw.federate_samples('good_metric{job="good"}').values())[0][0] == 42
    for name in CASES:
        assert sw.federate_samples(f'{{job="{name}",__name__!~"up|scrape_.*"}}') == {}, name
    log = wait_until(lambda: all(reason in sw.output() for _, reason, _ in CASES.values()) and sw.output(),
                     what="every failure reason logged")
    for name, (_, reason, _) in CASES.items():
        lines = [l for l in log.splitlines() if "scrape of" in l and f"/{name}" in l]
        assert lines and reason in lines[0], (name, lines)
    assert sw.alive()
    # Still serving and still scraping the good target afterwards.
    first = list(sw.federate_samples('up{job="good"}').values())[0][1]
    wait_until(lambda: list(sw.federate_samples('up{job="good"}').values())[0][1] > first,
               what="good target scraped again")


def test_target_down_then_up(start_sidewatch, target):
    target.routes["/m"] = (500, {}, b"")
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: flappy
    metrics_path: /m
    static_configs:
      - targets: ['{target.addr}']
""")
    wait_until(lambda: [v for v, _ in sw.federate_samples('up{job="flappy"}').values()] == [0.0], what="down")
    target.routes["/m"] = (200, {"Content-Type": TEXT}, GOOD)
    wait_until(lambda: sw.federate_samples('good_metric{job="flappy"}'), what="recovered")
    assert "recovered" in sw.output()
