"""Scrape semantics that Prometheus users rely on: request headers, gzip,
honor_labels, honor_timestamps, relabeling, staleness of disappearing
series, file_sd_configs reloaded on change, and the embedded default."""
import gzip
import json
import time

from conftest import OPENMETRICS, TEXT, wait_until


def test_request_headers_params_and_gzip(start_sidewatch, target):
    body = b"# TYPE g gauge\ng 5\n" * 1
    def gz(handler):
        data = gzip.compress(body)
        handler.send_response(200)
        handler.send_header("Content-Type", TEXT)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    target.routes["/probe"] = gz
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
scrape_configs:
  - job_name: p
    metrics_path: /probe
    params:
      module: [http_2xx]
      target: ['a b&c']
    static_configs:
      - targets: ['{target.addr}']
""")
    wait_until(lambda: sw.federate_samples('g{job="p"}'), what="gzip target scraped")
    path, headers = target.requests[0]
    assert path == "/probe?module=http_2xx&target=a+b%26c", path
    assert headers["Accept"] == ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                                 "application/openmetrics-text;version=0.0.1;q=0.5,"
                                 "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                                 "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
    assert headers["Accept-Encoding"] == "gzip"
    assert headers["X-Prometheus-Scrape-Timeout-Seconds"] == "0.8"
    assert headers["User-Agent"].startswith("sidewatch/")
    assert list(sw.federate_samples('g{job="p"}').values())[0][0] == 5


def test_honor_labels_timestamps_and_relabeling(start_sidewatch, target):
    now_ms = int(time.time() * 1000)
    ts = now_ms - 60000
    exposition = (f"# TYPE m counter\n"
                  f'm_total{{job="exposed",instance="i",keep="yes"}} 3 {ts}\n'
                  f'm_total{{job="exposed",instance="i",keep="no"}} 4\n'
                  f'other{{exported_job="x"}} 1\n').encode()
    target.routes["/m"] = (200, {"Content-Type": TEXT}, exposition)
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: plain
    metrics_path: /m
    static_configs:
      - targets: ['{target.addr}']
        labels:
          team: a
    relabel_configs:
      - source_labels: [team]
        target_label: team
        replacement: team-$1
    metric_relabel_configs:
      - source_labels: [keep]
        regex: no
        action: drop
  - job_name: honoring
    metrics_path: /m
    honor_labels: true
    honor_timestamps: false
    static_configs:
      - targets: ['{target.addr}']
""")
    plain = wait_until(lambda: sw.federate_samples('{__name__=~"m_total|other",team="team-a"}'),
                       what="plain job scraped")
    # Clashing exposed labels become exported_*, target labels win; the
    # sample's own timestamp is kept (honor_timestamps defaults to true).
    key = f'm_total{{exported_instance="i",exported_job="exposed",instance="{target.addr}",job="plain",keep="yes",team="team-a"}}'
    assert plain[key] == (3.0, ts), plain
    assert not any('keep="no"' in k for k in plain)  # dropped by metric_relabel_configs
    assert f'other{{exported_job="x",instance="{target.addr}",job="plain",team="team-a"}}' in plain, plain
    honoring = wait_until(lambda: sw.federate_samples('m_total{job="exposed"}'), what="honoring job scraped")
    assert len(honoring) == 2
    for series, (v, t) in honoring.items():
        assert 'instance="i"' in series
        assert t > ts + 30000  # honor_timestamps: false uses the scrape time


def test_disappearing_series_go_stale(start_sidewatch, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"a 1\nb 2\n")
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: s
    metrics_path: /m
    static_configs:
      - targets: ['{target.addr}']
""")
    wait_until(lambda: len(sw.federate_samples('{job="s",__name__=~"a|b"}')) == 2, what="both")
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"a 1\n")
    # b got a staleness marker, which federation hides; a stays.
    wait_until(lambda: list(sw.federate_samples('{job="s",__name__=~"a|b"}')) ==
               [f'a{{instance="{target.addr}",job="s"}}'], what="b stale")
    # A failed scrape marks everything stale.
    target.routes["/m"] = (503, {}, b"")
    wait_until(lambda: sw.federate_samples('{job="s",__name__=~"a|b"}') == {}, what="all stale")
    up = list(sw.federate_samples('up{job="s"}').values())[0][0]
    assert up == 0


def test_file_sd_reloads_on_change(start_sidewatch, target, tmp_path):
    target.routes["/metrics"] = (200, {"Content-Type": OPENMETRICS}, b"# TYPE x gauge\nx 1\n# EOF\n")
    sd = tmp_path / "targets.json"
    sd.write_text(json.dumps([{"targets": [target.addr], "labels": {"env": "prod"}}]))
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: files
    file_sd_configs:
      - files: ['{tmp_path}/*.json', '{tmp_path}/*.yml']
        refresh_interval: 1h
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: .*/(.*)
        target_label: sd_file
""")
    got = wait_until(lambda: sw.federate_samples('x{job="files"}'), what="file_sd target scraped")
    assert list(got) == [f'x{{env="prod",instance="{target.addr}",job="files",sd_file="targets.json"}}']
    # Change the labels: new series, the old one goes stale (no waiting for
    # the 1h refresh interval: changes are watched).
    sd.write_text(json.dumps([{"targets": [target.addr], "labels": {"env": "staging"}}]))
    wait_until(lambda: list(sw.federate_samples('x{job="files"}')) ==
               [f'x{{env="staging",instance="{target.addr}",job="files",sd_file="targets.json"}}'],
               what="relabelled target after file change")
    # A YAML file is picked up too; a broken file keeps its last good groups.
    (tmp_path / "more.yml").write_text(f"- targets: ['{target.addr}']\n  labels:\n    env: yaml\n")
    wait_until(lambda: len(sw.federate_samples('x{job="files"}')) == 2, what="yaml file added")
    sd.write_text("[{ this is not json")
    time.sleep(2.5)
    assert len(sw.federate_samples('x{job="files"}')) == 2
    assert "targets.json" in sw.output() and sw.alive()
    sd.unlink()
    wait_until(lambda: len(sw.federate_samples('x{job="files"}')) == 1, what="removed file's target gone")


def test_default_config_scrapes_itself(start_sidewatch):
    sw = start_sidewatch()
    s = wait_until(lambda: sw.federate_samples('up{job="sidewatch"}'), what="self scrape")
    assert list(s.values())[0][0] == 1
    names = sw.federate_samples('{job="sidewatch",__name__=~"sidewatch_build_info|process_.*"}')
    assert any(k.startswith("sidewatch_build_info{") for k in names)
    assert any(k.startswith("process_resident_memory_bytes{") for k in names)


def test_scrape_phase_is_stable_and_spread(start_sidewatch, target):
    """Each target keeps its own offset within the interval, and offsets of
    different targets differ (load is spread, not synchronised)."""
    times = {}
    def recorder(name):
        def handle(handler):
            times.setdefault(name, []).append(time.time())
            handler.send_response(200)
            handler.send_header("Content-Type", TEXT)
            handler.send_header("Content-Length", "4")
            handler.end_headers()
            handler.wfile.write(b"m 1\n")
        return handle
    jobs = ""
    for i in range(8):
        target.routes[f"/t{i}"] = recorder(f"t{i}")
        jobs += f"""
  - job_name: t{i}
    metrics_path: /t{i}
    static_configs:
      - targets: ['{target.addr}']
"""
    start_sidewatch("global:\n  scrape_interval: 1s\nscrape_configs:" + jobs)
    wait_until(lambda: len(times) == 8 and all(len(v) >= 4 for v in times.values()), timeout=30,
               what="4 scrapes of every target")
    phases = []
    for name, ts in times.items():
        ph = [(t % 1.0) for t in ts[1:4]]
        # Circular spread of one target's phases: well under the interval.
        spread = min(max(ph) - min(ph), 1 - (max(ph) - min(ph)))
        assert spread < 0.15, (name, ph)
        phases.append(ph[0])
    phases.sort()
    gaps = [b - a for a, b in zip(phases, phases[1:])] + [1 - phases[-1] + phases[0]]
    assert max(gaps) < 0.9, phases  # not all targets in one 100 ms window


def test_retention_deletes_old_samples(start_sidewatch, target):
    """Retention drops whole chunks (120 samples): scraping every 100 ms
    closes a chunk every 12 s, and with 2 s retention it is deleted soon
    after."""
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"m 1\n")
    sw = start_sidewatch(f"""
global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
  - job_name: r
    metrics_path: /m
    static_configs:
      - targets: ['{target.addr}']
""", extra_args=["--storage.retention.time=2s"])
    def deleted():
        for line in sw.metrics().text.splitlines():
            if line.startswith("sidewatch_store_retention_deleted_samples_total "):
                return float(line.split()[1]) > 0
    wait_until(deleted, timeout=45, what="retention deleting samples")
