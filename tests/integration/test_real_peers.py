"""sidewatch against real Prometheus components from Debian: it scrapes a
real node_exporter; a real Prometheus 2.42 scrapes sidewatch; promtool
lints sidewatch's /metrics."""
import os
import subprocess

import requests

from conftest import Proc, free_port, wait_until


def test_scrapes_node_exporter_and_federates(start_sidewatch, node_exporter):
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
  external_labels:
    site: lab
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{node_exporter}']
""")
    def up():
        s = sw.federate_samples('up{job="node"}')
        return s if any(v == 1.0 for v, _ in s.values()) else None
    samples = wait_until(up, what="up{job=\"node\"} 1 in /federate")
    key = f'up{{instance="{node_exporter}",job="node",site="lab"}}'
    assert key in samples, samples
    assert samples[key][0] == 1.0

    text = sw.federate('{__name__=~"node_cpu_seconds_total|node_memory_MemTotal_bytes"}')
    assert "# TYPE node_cpu_seconds_total untyped" in text
    assert 'node_cpu_seconds_total{cpu="0",instance="' + node_exporter + '",job="node",mode="idle",site="lab"}' in text
    assert "node_memory_MemTotal_bytes{" in text
    # Synthetic series of every scrape.
    for name in ["scrape_duration_seconds", "scrape_samples_scraped",
                 "scrape_samples_post_metric_relabeling", "scrape_series_added"]:
        s = sw.federate_samples(f'{name}{{job="node"}}')
        assert len(s) == 1, (name, s)
    scraped = list(sw.federate_samples('scrape_samples_scraped{job="node"}').values())[0][0]
    assert scraped > 100  # node_exporter exposes hundreds of series
    # Per-target stats on /metrics.
    m = sw.metrics().text
    assert f'sidewatch_scrape_target_up{{job="node",instance="{node_exporter}"}} 1' in m


def test_real_prometheus_scrapes_sidewatch(start_sidewatch, tmp_path, procs):
    sw = start_sidewatch()  # embedded default config
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sidewatch
    static_configs:
      - targets: ['127.0.0.1:{sw.port}']
""")
    prom = Proc(["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={tmp_path / 'prom-data'}"], str(tmp_path / "prometheus.log"))
    procs.append(prom)

    def prom_up():
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'up{job="sidewatch"}'}, timeout=2)
        res = r.json()["data"]["result"]
        return res if res and res[0]["value"][1] == "1" else None
    res = wait_until(prom_up, timeout=30, what="Prometheus reporting up=1 for sidewatch")
    assert res[0]["metric"]["instance"] == f"127.0.0.1:{sw.port}"

    # Prometheus parsed every family sidewatch exposes (it negotiates OpenMetrics).
    def has_build_info():
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "sidewatch_build_info"}, timeout=2)
        return r.json()["data"]["result"]
    res = wait_until(has_build_info, what="sidewatch_build_info in Prometheus")
    assert res[0]["value"][1] == "1"
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
    t = [t for t in r["data"]["activeTargets"] if t["labels"]["job"] == "sidewatch"][0]
    assert t["health"] == "up" and t["lastError"] == "", t


def test_promtool_accepts_metrics(start_sidewatch):
    sw = start_sidewatch()
    # Let it scrape itself once so per-target metrics exist.
    wait_until(lambda: "sidewatch_scrape_target_up{" in sw.metrics().text, what="self scrape")
    # promtool lints the text format (what a client gets without asking for
    # OpenMetrics); it exits non-zero on any problem it finds.
    body = sw.metrics().text
    p = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True)
    assert p.returncode == 0, (p.stdout.decode(), p.stderr.decode())
    ct = sw.metrics("application/openmetrics-text;version=1.0.0").headers["Content-Type"]
    assert ct.startswith("application/openmetrics-text")
    text = sw.metrics().text
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "process_start_time_seconds", "sidewatch_build_info", "sidewatch_store_series",
                 "sidewatch_store_size_bytes"]:
        assert f"\n{name}" in text or text.startswith(name), name


def test_real_prometheus_scrapes_sidewatch_protobuf(start_sidewatch, tmp_path, procs):
    """With native histograms on, Prometheus 2.42 asks for the protobuf
    format first: it must parse sidewatch's protobuf /metrics."""
    sw = start_sidewatch()
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sidewatch
    static_configs:
      - targets: ['127.0.0.1:{sw.port}']
""")
    prom = Proc(["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
                 "--enable-feature=native-histograms",
                 f"--storage.tsdb.path={tmp_path / 'prom-data'}"], str(tmp_path / "prometheus.log"))
    procs.append(prom)

    def query(q):
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": q}, timeout=2)
        return r.json()["data"]["result"]
    res = wait_until(lambda: query("sidewatch_build_info"), timeout=30, what="sidewatch_build_info in Prometheus")
    assert res[0]["value"][1] == "1"
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
    t = [t for t in r["data"]["activeTargets"] if t["labels"]["job"] == "sidewatch"][0]
    assert t["health"] == "up" and t["lastError"] == "", t
    # Counters and histogram buckets came through with their types.
    assert query("process_cpu_seconds_total")
    meta = requests.get(f"http://127.0.0.1:{port}/api/v1/targets/metadata",
                        params={"metric": "process_cpu_seconds_total"}, timeout=2).json()["data"]
    assert meta and meta[0]["type"] == "counter", meta
