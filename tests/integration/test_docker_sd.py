"""docker_sd_configs against a real dockerd (scripts/engine.sh): a
host-networked busybox httpd labelled prometheus.io/scrape=true and
prometheus.io/port=<port> is discovered and scraped with the embedded
default config's relabeling; an unlabelled --network none container is
dropped; removing the httpd container removes the target and marks its
series stale."""
import os
import time
import uuid

import requests

from conftest import wait_until

# The docker job of the embedded default config (agent/config.c,
# default_yaml_docker), with short intervals for the test. Keep in sync.
DOCKER_JOB = """
  - job_name: docker
    fallback_scrape_protocol: PrometheusText0.0.4
    docker_sd_configs:
      - host: {host}
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_docker_container_label_prometheus_io_scrape]
        regex: 'true'
        action: keep
      - source_labels: [__address__, __meta_docker_container_label_prometheus_io_port]
        regex: '(.*?)(?::\\d+)?;(\\d+)'
        replacement: '$1:$2'
        target_label: __address__
      - source_labels: [__meta_docker_container_label_prometheus_io_path]
        regex: '(.+)'
        target_label: __metrics_path__
      - source_labels: [__meta_docker_container_label_prometheus_io_scheme]
        regex: '(https?)'
        target_label: __scheme__
      - source_labels: [__meta_docker_container_name]
        regex: '/?(.+)'
        target_label: container
"""


def targets(sw, state="any"):
    r = requests.get(sw.url + "/api/v1/targets", params={"state": state}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


def query(sw, q):
    r = requests.get(sw.url + "/api/v1/query", params={"query": q}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_docker_sd_real_engine(docker_engine, start_sidewatch, tmp_path):
    from conftest import free_port
    eng = docker_engine
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "metrics").write_text(
        "# HELP demo_requests_total Requests served.\n"
        "# TYPE demo_requests_total counter\n"
        'demo_requests_total{code="200"} 1027\n'
        "# TYPE demo_temperature gauge\n"
        "demo_temperature 21.5\n")
    suffix = uuid.uuid4().hex[:8]
    web, idle = f"sw-web-{suffix}", f"sw-idle-{suffix}"
    started = []
    try:
        web_id = eng.docker("run", "-d", "--name", web, "--network", "host",
                            "-v", f"{www}:/www:ro",
                            "--label", "prometheus.io/scrape=true",
                            "--label", f"prometheus.io/port={port}",
                            eng.IMAGE, "/bin/httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www")
        started.append(web)
        idle_id = eng.docker("run", "-d", "--name", idle, "--network", "none",
                             eng.IMAGE, "/bin/sleep", "600")
        started.append(idle)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).ok,
                   timeout=20, what="busybox httpd in its container")

        sw = start_sidewatch("global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n"
                             "scrape_configs:" + DOCKER_JOB.format(host=eng.host))

        # Discovered, relabeled as the default config does, and up.
        def web_target():
            for t in targets(sw, "active")["activeTargets"]:
                if t["discoveredLabels"].get("__meta_docker_container_id") == web_id:
                    return t if t["health"] == "up" else None
            return None
        t = wait_until(web_target, timeout=20, what="the httpd container as an up target")
        assert t["labels"] == {"container": web, "instance": f"localhost:{port}", "job": "docker"}
        assert t["scrapePool"] == "docker"
        assert t["scrapeUrl"] == f"http://localhost:{port}/metrics"
        d = t["discoveredLabels"]
        assert d["__address__"] == "localhost"  # host_networking_host
        assert d["__meta_docker_container_name"] == "/" + web
        assert d["__meta_docker_container_network_mode"] == "host"
        assert d["__meta_docker_container_image"] == eng.IMAGE
        assert d["__meta_docker_container_image_id"].startswith("sha256:")
        assert d["__meta_docker_container_label_prometheus_io_scrape"] == "true"
        assert d["__meta_docker_container_label_prometheus_io_port"] == str(port)
        assert d["__meta_docker_network_name"] == "host"
        assert d["__meta_docker_network_scope"] == "local"
        assert d["__meta_docker_network_internal"] == "false"
        assert d["__meta_docker_network_ingress"] == "false"
        assert len(d["__meta_docker_network_id"]) == 64
        assert "__meta_docker_port_private" not in d  # host networking exposes no ports

        # The unlabelled --network none container is dropped by relabeling.
        data = targets(sw, "any")
        active_ids = {a["discoveredLabels"].get("__meta_docker_container_id")
                      for a in data["activeTargets"]}
        assert idle_id not in active_ids
        dropped = [x for x in data["droppedTargets"]
                   if x["discoveredLabels"].get("__meta_docker_container_id") == idle_id]
        assert len(dropped) == 1, data["droppedTargets"]
        dl = dropped[0]["discoveredLabels"]
        assert dl["__meta_docker_container_name"] == "/" + idle
        assert dl["__meta_docker_container_network_mode"] == "none"
        assert dl["__address__"] == ":80"  # no IP; the configured port

        # The file's metrics, scraped and queryable.
        res = wait_until(lambda: query(sw, f'demo_requests_total{{container="{web}"}}'),
                         timeout=20, what="demo_requests_total scraped")
        assert len(res) == 1
        assert res[0]["metric"] == {"__name__": "demo_requests_total", "code": "200",
                                    "container": web, "instance": f"localhost:{port}",
                                    "job": "docker"}
        assert res[0]["value"][1] == "1027"
        res = query(sw, f'demo_temperature{{container="{web}"}}')
        assert [r["value"][1] for r in res] == ["21.5"]
        assert query(sw, f'up{{container="{web}"}}')[0]["value"][1] == "1"

        # Removing the container removes the target; its series go stale at
        # once (an instant query no longer sees them, well within the 5 m
        # lookback that would otherwise keep showing the last sample).
        eng.docker("rm", "-f", web)
        started.remove(web)
        removed_at = time.time()
        wait_until(lambda: web_target() is None and not any(
            a["discoveredLabels"].get("__meta_docker_container_id") == web_id
            for a in targets(sw, "any")["activeTargets"]),
            timeout=20, what="the target to go away")
        wait_until(lambda: query(sw, f'demo_requests_total{{container="{web}"}}') == [] and
                   query(sw, f'demo_temperature{{container="{web}"}}') == [] and
                   query(sw, f'up{{container="{web}"}}') == [],
                   timeout=10, what="the series to go stale")
        assert time.time() - removed_at < 30
        # The samples before are still there (stale, not deleted).
        r = requests.get(sw.url + "/api/v1/query",
                         params={"query": f'count_over_time(demo_temperature{{container="{web}"}}[5m])'},
                         timeout=10).json()
        assert r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 1

        # sidewatch's own discovery metrics saw the refreshes.
        m = sw.metrics().text
        assert 'sidewatch_sd_refreshes_total{mechanism="docker"}' in m
    finally:
        for name in started:
            eng.docker("rm", "-f", name, check=False)
