"""The Grafana dashboards (dashboards/*.json) and the Grafana provisioning
files (docker/grafana/provisioning/): schema basics; every panel and
variable query parses with sidewatch's PromQL parser; evaluated against an
hour of fixture data (container stats with cAdvisor's labels, app metrics,
up, ALERTS, sidewatch's own metrics) every query returns a non-empty result,
in sidewatch and in a real Prometheus 2.42 loaded with the same data
(`promtool tsdb create-blocks-from openmetrics`), and both agree."""
import glob
import json
import math
import os
import random
import re
import shutil
import subprocess
import time

import pytest
import requests
import yaml

from conftest import BIN, REPO, SANITIZER_MARKERS, Proc, free_port, skip_or_fail, wait_until

DASHBOARDS = sorted(glob.glob(os.path.join(REPO, "dashboards", "*.json")))
PROVISIONING = os.path.join(REPO, "docker", "grafana", "provisioning")
DS_PROVISIONING = os.path.join(PROVISIONING, "datasources", "sidewatch.yml")
DB_PROVISIONING = os.path.join(PROVISIONING, "dashboards", "sidewatch.yml")
COMPOSE = os.path.join(REPO, "docker", "docker-compose.prod.yml")

EXPECTED = {"containers.json", "app-red.json", "alerts.json", "sidewatch.json"}
PANEL_TYPES = {"timeseries", "stat", "table", "gauge"}
VARIABLES = ("datasource", "job", "instance", "container")
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

# Grafana's built-in variables and what the test puts in their place.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
            "__interval_ms": "15000", "__range_ms": "3600000"}
# Query variables all have includeAll with allValue ".*" (and match a
# missing label too): the "All" selection is what Grafana opens with.
ALL = ".*"
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


def load(path):
    with open(path) as f:
        return json.load(f)


def panels(d):
    """Every panel, rows' nested panels included."""
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def variable_query(v):
    q = v.get("query")
    return q.get("query") if isinstance(q, dict) else q


def substitute(expr, query_vars):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in query_vars:
            return ALL
        raise AssertionError(f"undefined variable ${name} in {expr!r}")
    return VAR_RE.sub(repl, expr)


def queries():
    """(id, PromQL) of every panel target and of every variable's selector
    (label_values(SELECTOR, LABEL)), variables substituted."""
    out = []
    for path in DASHBOARDS:
        d = load(path)
        base = os.path.basename(path)[: -len(".json")]
        qvars = {v["name"] for v in d["templating"]["list"] if v.get("type") == "query"}
        for p in panels(d):
            for t in p.get("targets", []):
                out.append((f"{base}: {p.get('title')} [{t.get('refId')}]", substitute(t["expr"], qvars),
                            "table" if t.get("instant") and not t.get("range") else "panel"))
    return out


def variable_queries():
    """(id, selector or None, label) of every query variable."""
    out = []
    for path in DASHBOARDS:
        d = load(path)
        base = os.path.basename(path)[: -len(".json")]
        qvars = {v["name"] for v in d["templating"]["list"] if v.get("type") == "query"}
        for v in d["templating"]["list"]:
            if v.get("type") != "query":
                continue
            m = LABEL_VALUES_RE.match(variable_query(v))
            assert m, f"{base}: variable {v['name']}: not label_values(...): {variable_query(v)!r}"
            sel = substitute(m.group(1), qvars) if m.group(1) else None
            out.append((f"{base}: ${v['name']}", sel, m.group(2)))
    return out


QUERIES = queries()
VARIABLE_QUERIES = variable_queries()


# ---- 1. schema basics and provisioning ------------------------------------------------------

def test_the_four_dashboards_are_there():
    assert {os.path.basename(p) for p in DASHBOARDS} == EXPECTED


def test_uids_and_titles_unique():
    ds = [load(p) for p in DASHBOARDS]
    uids = [d.get("uid") for d in ds]
    titles = [d.get("title") for d in ds]
    assert all(isinstance(u, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", u) for u in uids), uids
    assert len(set(uids)) == len(uids), uids
    assert all(isinstance(t, str) and t for t in titles), titles
    assert len(set(titles)) == len(titles), titles


@pytest.mark.parametrize("path", DASHBOARDS, ids=os.path.basename)
def test_dashboard_schema(path):
    d = load(path)
    problems = []
    if d.get("schemaVersion") != 39:
        problems.append(f"schemaVersion {d.get('schemaVersion')}")
    if "sidewatch" not in d.get("tags", []):
        problems.append(f"tags {d.get('tags')}")
    if d.get("id") is not None:
        problems.append("id must be null (Grafana assigns it)")
    t = d.get("time", {})
    if not (isinstance(t.get("from"), str) and isinstance(t.get("to"), str)):
        problems.append(f"time {t}")
    if not isinstance(d.get("refresh"), str) or not re.fullmatch(r"\d+[smh]", d["refresh"]):
        problems.append(f"refresh {d.get('refresh')!r}")

    tlist = d.get("templating", {}).get("list")
    if not isinstance(tlist, list):
        pytest.fail(f"{path}: no templating.list")
    byname = {v.get("name"): v for v in tlist}
    for name in VARIABLES:
        if name not in byname:
            problems.append(f"variable {name} missing")
    ds = byname.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus" \
            or ds.get("current", {}).get("value") != "sidewatch":
        problems.append(f"datasource variable {ds}")
    for v in tlist:
        if v.get("type") != "query":
            continue
        if v.get("datasource") != DS_REF:
            problems.append(f"variable {v['name']}: datasource {v.get('datasource')}")
        if not v.get("includeAll") or v.get("allValue") != ".*":
            problems.append(f"variable {v['name']}: includeAll with allValue '.*' expected")
        if not LABEL_VALUES_RE.match(variable_query(v) or ""):
            problems.append(f"variable {v['name']}: query {variable_query(v)!r}")
        if v.get("definition") != variable_query(v):
            problems.append(f"variable {v['name']}: definition differs from query")

    ps = list(panels(d))
    if not ps:
        problems.append("no panels")
    ids = [p.get("id") for p in ps]
    if len(set(ids)) != len(ids) or None in ids:
        problems.append(f"panel ids not unique: {ids}")
    types = set()
    cells = set()
    for p in ps:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        types.add(p.get("type"))
        if p.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: type {p.get('type')}")
        if not p.get("title"):
            problems.append(f"{where}: no title")
        if p.get("datasource") != DS_REF:
            problems.append(f"{where}: datasource {p.get('datasource')}")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["w"] < 1 or g["h"] < 1 \
                or g["x"] < 0 or g["x"] + g["w"] > 24 or g["y"] < 0:
            problems.append(f"{where}: gridPos {g}")
        else:
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    if (x, y) in cells:
                        problems.append(f"{where}: overlaps another panel at {x},{y}")
                        break
                    cells.add((x, y))
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refids = [t.get("refId") for t in targets]
        if len(set(refids)) != len(refids) or None in refids:
            problems.append(f"{where}: refIds {refids}")
        for t in targets:
            if not isinstance(t.get("expr"), str) or not t["expr"].strip():
                problems.append(f"{where}: target {t.get('refId')} without expr")
            if t.get("datasource", DS_REF) != DS_REF:
                problems.append(f"{where}: target datasource {t.get('datasource')}")
            if "legendFormat" not in t:
                problems.append(f"{where}: target {t.get('refId')} without legendFormat")
            for m in VAR_RE.finditer(t.get("expr", "")):
                name = m.group(1) or m.group(2)
                if name not in BUILTINS and name not in byname:
                    problems.append(f"{where}: undefined variable ${name}")
            if "rate(" in t.get("expr", "") and "$__rate_interval" not in t["expr"] \
                    and p.get("type") == "timeseries":
                problems.append(f"{where}: a graph's rate window should be $__rate_interval")
    # Each dashboard filters by its variables somewhere.
    exprs = " ".join(t["expr"] for p in ps for t in p.get("targets", []) if "expr" in t)
    for name in ("job", "instance", "container"):
        if f"${name}" not in exprs:
            problems.append(f"no query uses ${name}")
    assert not problems, f"{os.path.basename(path)}:\n" + "\n".join(problems)


def test_dashboards_use_every_panel_type():
    types = {p.get("type") for path in DASHBOARDS for p in panels(load(path))}
    assert types == PANEL_TYPES, types


PROMQL_WORDS = {"sum", "max", "min", "count", "avg", "rate", "increase", "changes", "histogram_quantile",
                "vector", "time", "by", "on", "and", "or", "unless", "without", "group_left", "group_right",
                "le", "name", "image", "job", "instance", "container", "route", "method", "status",
                "severity", "alertname", "alertstate", "rule_group", "destination", "reason", "cpu",
                "exported_job", "exported_instance"}


def metric_names():
    """Metric names the dashboards' queries select."""
    names = set()
    for _, expr, _ in QUERIES:
        no_strings = re.sub(r'"[^"]*"', '""', expr)
        no_braces = re.sub(r"\{[^}]*\}", "{}", no_strings)
        no_grouping = re.sub(r"\b(by|on|without)\s*\([^)]*\)", "", no_braces)
        for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", no_grouping):
            w = m.group(1)
            if w not in PROMQL_WORDS and not re.fullmatch(r"\d.*|[0-9.]+[smhd]?", w):
                names.add(w)
    for _, sel, _ in VARIABLE_QUERIES:
        if sel:
            names.add(re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", sel).group(1))
    return names


def test_metric_names_are_what_sidewatch_and_the_rules_use():
    """container_*, sidewatch_* and process_* names appear in sidewatch's C
    sources (what it really exports); the app's names and ALERTS/up are the
    ones the shipped rules use (rules/*.yml). Catches a name misspelt alike
    in a dashboard and in the fixture."""
    src = ""
    for f in glob.glob(os.path.join(REPO, "agent", "*.c")) + glob.glob(os.path.join(REPO, "exporter", "*.c")):
        with open(f) as fh:
            src += fh.read()
    rules = ""
    for f in glob.glob(os.path.join(REPO, "rules", "*.yml")):
        with open(f) as fh:
            rules += fh.read()
    names = metric_names()
    assert {"container_cpu_usage_seconds_total", "http_requests_total", "ALERTS", "up",
            "sidewatch_store_samples_appended_total"} <= names, names
    missing = []
    for n in sorted(names):
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        if n.startswith(("container_", "sidewatch_", "process_", "machine_")):
            if f'"{n}"' not in src and f'"{base}"' not in src:
                missing.append(f"{n}: not in agent/ or exporter/ sources")
        elif n in ("ALERTS", "up"):
            if n not in src:
                missing.append(f"{n}: not in agent/ sources")
        elif not re.search(r"\b" + re.escape(base) + r"(_bucket)?\b", rules):
            missing.append(f"{n}: not used by rules/*.yml (the app metric names)")
    assert not missing, "\n".join(missing)


def test_datasource_provisioning():
    with open(DS_PROVISIONING) as f:
        y = yaml.safe_load(f)
    assert y.get("apiVersion") == 1
    [ds] = y["datasources"]
    assert ds["name"] == "sidewatch" and ds["uid"] == "sidewatch" and ds["type"] == "prometheus"
    assert ds["url"] == "http://sidewatch:9277"
    assert ds["isDefault"] is True
    # The dashboards' datasource variable defaults to this datasource.
    for path in DASHBOARDS:
        [v] = [v for v in load(path)["templating"]["list"] if v["name"] == "datasource"]
        assert v["current"]["value"] in (ds["name"], ds["uid"]), path


def dashboards_provider():
    with open(DB_PROVISIONING) as f:
        y = yaml.safe_load(f)
    assert y.get("apiVersion") == 1
    [p] = y["providers"]
    assert p["type"] == "file"
    return p


def test_dashboard_provisioning():
    p = dashboards_provider()
    assert p["options"]["path"] == "/var/lib/grafana/dashboards"
    assert p.get("folder")
    # What that path holds (the repository's dashboards/) exists and is JSON dashboards.
    assert DASHBOARDS


def compose_volumes(service):
    with open(COMPOSE) as f:
        y = yaml.safe_load(f)
    svc = y.get("services", {}).get(service)
    assert svc, f"{COMPOSE}: no {service} service"
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            src, dst = parts[0], parts[1]
        else:
            src, dst = v.get("source"), v.get("target")
        if src and (src.startswith(".") or src.startswith("/")):
            src = os.path.normpath(os.path.join(os.path.dirname(COMPOSE), src))
        out.append((src, dst))
    return out


def test_compose_mounts_what_provisioning_reads():
    """docker-compose.prod.yml's grafana service mounts dashboards/ where the
    provider reads and the provisioning directory where Grafana looks."""
    if not os.path.exists(COMPOSE):
        skip_or_fail(f"{COMPOSE} not there yet (written by the compose part of issue 7)")
    vols = compose_volumes("grafana")
    provider_path = dashboards_provider()["options"]["path"]
    dash_dir = os.path.join(REPO, "dashboards")
    assert (dash_dir, provider_path) in vols, f"grafana volumes {vols}: want {dash_dir} at {provider_path}"
    prov_ok = (PROVISIONING, "/etc/grafana/provisioning") in vols or (
        (os.path.join(PROVISIONING, "datasources"), "/etc/grafana/provisioning/datasources") in vols
        and (os.path.join(PROVISIONING, "dashboards"), "/etc/grafana/provisioning/dashboards") in vols)
    assert prov_ok, f"grafana volumes {vols}: want {PROVISIONING} at /etc/grafana/provisioning"
    for src, _ in vols:
        if src and src.startswith(REPO):
            assert os.path.exists(src), f"mounted path {src} does not exist"


# ---- fixture data ---------------------------------------------------------------------------

STEP = 15
HOUR = 3600


def om_labels(ls):
    def esc(v):
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in ls.items()) + "}" if ls else ""


class Fixture:
    """An OpenMetrics file: families in order, each metric's points in time order."""

    def __init__(self, start, end):
        self.start, self.end = start, end
        self.times = list(range(start, end + 1, STEP))
        self.families = {}   # name -> (type, [lines])

    def _fam(self, name, typ):
        if name not in self.families:
            self.families[name] = (typ, [])
        assert self.families[name][0] == typ, name
        return self.families[name][1]

    def gauge(self, name, labels, fn, window=None):
        lines = self._fam(name, "gauge")
        for t in self.times:
            if window and not (window[0] <= t <= window[1]):
                continue
            lines.append(f"{name}{om_labels(labels)} {fn(t):.6g} {t}")

    def counter(self, name, labels, rate_fn):
        """rate_fn(t) -> increase per second at t; the value accumulates."""
        assert name.endswith("_total")
        lines = self._fam(name[: -len("_total")], "counter")
        v = 0.0
        for t in self.times:
            v += rate_fn(t) * STEP
            lines.append(f"{name}{om_labels(labels)} {v:.17g} {t}")

    def histogram(self, name, labels, bounds, rate_fn, dist_fn):
        """rate_fn(t) observations per second; dist_fn(t, le) share of them <= le."""
        lines = self._fam(name, "histogram")
        cnt, total = 0.0, 0.0
        cum = [0.0] * len(bounds)
        for t in self.times:
            n = rate_fn(t) * STEP
            cnt += n
            for i, le in enumerate(bounds):
                cum[i] += n * dist_fn(t, le)
            total += n * dist_fn(t, None)
            for i, le in enumerate(bounds):
                lines.append(f"{name}_bucket{om_labels(dict(labels, le=repr(float(le))))} {cum[i]:.17g} {t}")
            lines.append(f"{name}_bucket{om_labels(dict(labels, le='+Inf'))} {cnt:.17g} {t}")
            lines.append(f"{name}_count{om_labels(labels)} {cnt:.17g} {t}")
            lines.append(f"{name}_sum{om_labels(labels)} {total:.17g} {t}")

    def write(self, path):
        with open(path, "w") as f:
            for name, (typ, lines) in self.families.items():
                f.write(f"# TYPE {name} {typ}\n")
                f.write("\n".join(lines))
                f.write("\n")
            f.write("# EOF\n")


def make_fixture(path, start, end):
    rnd = random.Random(7)
    fx = Fixture(start, end)
    mid = start + (end - start) // 2

    def wave(base, amp, period=600, phase=0.0):
        return lambda t: base + amp * math.sin(2 * math.pi * (t - start) / period + phase)

    # Containers as sidewatch's collector stores them (no job/instance), and
    # one from another sidewatch whose /metrics a Prometheus (or this
    # sidewatch) scrapes: job and instance of that scrape.
    containers = [
        ({}, "shop-app-1", "shop/app:1.4", "app", 512 << 20, True),
        ({}, "shop-redis-1", "redis:7-alpine", "redis", 256 << 20, True),
        ({}, "shop-nginx-1", "nginx:1.25", "nginx", 0, False),
        ({}, "shop-grafana-1", "grafana/grafana:10.4.2", "grafana", 0, False),
        ({"job": "sidewatch", "instance": "edge:9277"}, "edge-app-1", "shop/app:1.4", "app", 1 << 30, True),
    ]
    for i, (extra, name, image, service, limit, quota) in enumerate(containers):
        ls = dict(extra, id="/docker/" + ("%064x" % rnd.getrandbits(256)), name=name, image=image,
                  container_label_com_docker_compose_project="shop",
                  container_label_com_docker_compose_service=service)
        started = start - 86400 + i * 100
        restarted = name == "shop-app-1"
        fx.gauge("container_last_seen", ls, lambda t: t)
        fx.gauge("container_start_time_seconds", ls,
                 lambda t, s=started, r=restarted: (mid if r and t >= mid else s))
        fx.counter("container_cpu_usage_seconds_total", dict(ls, cpu="total"), wave(0.2 + 0.1 * i, 0.1))
        if quota:
            fx.counter("container_cpu_cfs_periods_total", ls, lambda t: 10.0)
            fx.counter("container_cpu_cfs_throttled_periods_total", ls, wave(1.0, 0.8, phase=i))
        work = (limit or (400 << 20)) * 0.6
        fx.gauge("container_memory_working_set_bytes", ls, wave(work, work * 0.3, phase=i))
        fx.gauge("container_spec_memory_limit_bytes", ls, lambda t, v=limit: v)
        net = dict(ls, interface="eth0")
        fx.counter("container_network_receive_bytes_total", net, wave(20000 * (i + 1), 5000))
        fx.counter("container_network_transmit_bytes_total", net, wave(15000 * (i + 1), 4000))
        dev = dict(ls, device="/dev/sda")
        fx.counter("container_fs_reads_bytes_total", dev, wave(4096 * (i + 1), 2048))
        fx.counter("container_fs_writes_bytes_total", dev, wave(8192 * (i + 1), 4096))
        oom_at = mid + 600 if name == "shop-redis-1" else None
        fx.counter("container_oom_events_total", ls,
                   lambda t, o=oom_at: (1.0 / STEP if o is not None and o <= t < o + STEP else 0.0))

    # Applications scraped through docker_sd (job, instance, container).
    apps = [("app", "app:8000", "shop-app-1", 1.0), ("api", "api:3000", "shop-api-1", 0.5)]
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    for job, inst, cont, scale in apps:
        base = {"job": job, "instance": inst, "container": cont}
        for method, route, status, rps in (("GET", "/", "200", 20), ("GET", "/items", "200", 8),
                                           ("POST", "/items", "200", 2), ("POST", "/items", "500", 0.3),
                                           ("GET", "/items", "404", 0.5)):
            fx.counter("http_requests_total", dict(base, method=method, route=route, status=status),
                       wave(rps * scale, rps * scale * 0.3))
        for method, route, median in (("GET", "/", 0.02), ("GET", "/items", 0.08), ("POST", "/items", 0.3)):
            def dist(t, le, m=median):
                m = m * (1.5 if t > mid else 1.0)
                if le is None:   # mean, for _sum
                    return m * 1.2
                return 1.0 - math.exp(-math.log(2) * le / m)
            fx.histogram("http_request_duration_seconds", dict(base, method=method, route=route), bounds,
                         wave(10 * scale, 3 * scale), dist)
        fx.counter("cache_hits_total", base, wave(50 * scale, 10))
        fx.counter("cache_misses_total", base, wave(10 * scale, 5))

    # up for every target; one that is down.
    SELF = {"job": "sidewatch", "instance": "sidewatch:9277"}
    targets = [(SELF, 1), ({"job": "app", "instance": "app:8000", "container": "shop-app-1"}, 1),
               ({"job": "api", "instance": "api:3000", "container": "shop-api-1"}, 1),
               ({"job": "docker", "instance": "worker:9100", "container": "shop-worker-1"}, 0)]
    for ls, v in targets:
        fx.gauge("up", ls, lambda t, v=v: v)

    # Process metrics: sidewatch's and the applications'.
    for ls, rss in ((SELF, 12e6), ({"job": "app", "instance": "app:8000", "container": "shop-app-1"}, 90e6)):
        fx.gauge("process_resident_memory_bytes", ls, wave(rss, rss * 0.1))
        fx.counter("process_cpu_seconds_total", ls, wave(0.01, 0.005))

    # ALERTS: firing and pending, some with job/instance, some with a container name.
    alerts = [
        ({"alertname": "HighErrorRate", "alertstate": "firing", "severity": "critical", "job": "api"},
         (end - 1800, end)),
        ({"alertname": "TargetDown", "alertstate": "firing", "severity": "critical", "job": "docker",
          "instance": "worker:9100", "container": "shop-worker-1"}, (start + 300, end)),
        ({"alertname": "ContainerOOMKilled", "alertstate": "firing", "severity": "critical",
          "name": "shop-redis-1", "image": "redis:7-alpine"}, (mid + 600, end)),
        ({"alertname": "ContainerMemoryHigh", "alertstate": "pending", "severity": "warning",
          "name": "shop-redis-1", "image": "redis:7-alpine"}, (end - 240, end)),
        ({"alertname": "LowCacheHitRate", "alertstate": "pending", "severity": "warning", "job": "app"},
         (end - 420, end)),
        ({"alertname": "TargetDown", "alertstate": "pending", "severity": "critical", "job": "api",
          "instance": "api:3000", "container": "shop-api-1"}, (end - 60, end)),
        ({"alertname": "HighRequestLatency", "alertstate": "firing", "severity": "warning", "job": "app"},
         (mid + 300, end)),
    ]
    for ls, window in alerts:
        fx.gauge("ALERTS", ls, lambda t: 1, window=window)

    # sidewatch's own metrics, as its self-scrape stores them.
    fx.gauge("sidewatch_build_info", dict(SELF, version="0.1.0"), lambda t: 1)
    fx.gauge("sidewatch_config_last_reload_successful", SELF, lambda t: 1)
    for ls, v in targets:
        tl = dict(SELF, exported_job=ls["job"], exported_instance=ls["instance"])
        fx.gauge("sidewatch_scrape_target_up", tl, lambda t, v=v: v)
        fx.gauge("sidewatch_scrape_target_duration_seconds", tl, wave(0.004, 0.001))
        fx.gauge("sidewatch_scrape_target_samples", tl, lambda t, v=v: 250 * v)
        fx.counter("sidewatch_scrape_target_scrapes_total", tl, lambda t: 1.0 / STEP)
        fx.counter("sidewatch_scrape_target_failures_total", tl, lambda t, v=v: (1.0 - v) / STEP)
    fx.counter("sidewatch_store_samples_appended_total", SELF, wave(80, 10))
    fx.gauge("sidewatch_store_size_bytes", SELF, lambda t: 4e6 + (t - start) * 100)
    fx.gauge("sidewatch_store_series", SELF, wave(1200, 30))
    for g, rules, failing in (("sidewatch-app", 5, False), ("sidewatch-containers", 4, True),
                              ("sidewatch-self", 6, False)):
        gl = dict(SELF, rule_group=g)
        fx.counter("sidewatch_rule_evaluations_total", gl, lambda t, n=rules: n / STEP)
        fx.counter("sidewatch_rule_evaluation_failures_total", gl,
                   lambda t, f=failing: (1.0 / STEP if f and t > mid else 0.0))
        fx.counter("sidewatch_rule_group_iterations_total", gl, lambda t: 1.0 / STEP)
        fx.counter("sidewatch_rule_group_iterations_missed_total", gl,
                   lambda t, f=failing: (1.0 / 600 if f else 0.0))
        fx.gauge("sidewatch_rule_group_rules", gl, lambda t, n=rules: n)
        fx.gauge("sidewatch_rule_group_interval_seconds", gl, lambda t: STEP)
        fx.gauge("sidewatch_rule_group_last_duration_seconds", gl, wave(0.003 * rules, 0.001))
        fx.gauge("sidewatch_rule_group_last_evaluation_timestamp_seconds", gl, lambda t: t - 3)
    fx.histogram("sidewatch_rule_evaluation_duration_seconds", SELF,
                 [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60], lambda t: 1.0,
                 lambda t, le: 0.004 if le is None else min(1.0, le / 0.008))
    for dest, qlen, dropping in (("alertmanager:9093", 0, False), ("webhook:ops", 40, True)):
        dl = dict(SELF, destination=dest)
        fx.gauge("sidewatch_notifications_queue_length", dl, wave(qlen, qlen / 2))
        fx.gauge("sidewatch_notifications_queue_capacity", dl, lambda t: 10000)
        fx.counter("sidewatch_notifications_sent_total", dl, wave(0.2, 0.1))
        fx.counter("sidewatch_notifications_errors_total", dl, lambda t, d=dropping: 0.05 if d else 0.0)
        fx.counter("sidewatch_notifications_dropped_total", dict(dl, reason="max_age"),
                   lambda t, d=dropping: 0.01 if d else 0.0)
    fx.write(path)
    return fx


# ---- servers on the fixture -----------------------------------------------------------------

class Api:
    def __init__(self, name, url):
        self.name, self.url = name, url

    def get(self, path, params):
        r = requests.post(self.url + path, data=params, timeout=30)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", \
            f"{self.name} {path} {params}: {r.status_code} {r.text[:500]}"
        return body["data"]

    def query(self, expr, t):
        return self.get("/api/v1/query", {"query": expr, "time": t})

    def query_range(self, expr, start, end, step):
        return self.get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})

    def label_values(self, label, selector, start, end):
        params = {"start": start, "end": end}
        if selector:
            params["match[]"] = selector
        r = requests.get(f"{self.url}/api/v1/label/{label}/values", params=params, timeout=30)
        assert r.status_code == 200, f"{self.name} label {label} {selector}: {r.status_code} {r.text[:500]}"
        return r.json()["data"]

    def series_label_values(self, label, selector, start, end):
        """What Grafana versions without the match[] label values API do:
        /api/v1/series, then the label's values."""
        r = requests.get(f"{self.url}/api/v1/series", params={"match[]": selector, "start": start, "end": end},
                         timeout=30)
        assert r.status_code == 200, f"{self.name} series {selector}: {r.status_code} {r.text[:500]}"
        return sorted({s[label] for s in r.json()["data"] if label in s})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The fixture file, sidewatch on a store it was imported into, and (when
    Debian's prometheus and promtool are there) Prometheus 2.42 on blocks
    promtool made from the same file. Every process is stopped by its PID."""
    d = tmp_path_factory.mktemp("dashboards")
    # An hour that ended an hour ago, on the 15 s grid: inside Prometheus's
    # retention and well before its head block.
    end = (int(time.time()) // STEP) * STEP - HOUR
    start = end - HOUR
    om = str(d / "fixture.om")
    fx = make_fixture(om, start, end)

    started = []
    out = {"fx": fx, "om": om, "sidewatch": None, "prometheus": None}
    try:
        storage = str(d / "sw-data")
        p = subprocess.run([BIN, "import", "openmetrics", om, f"--storage.path={storage}"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and not any(m in p.stderr for m in SANITIZER_MARKERS), \
            f"sidewatch import: {p.returncode}\n{p.stdout}{p.stderr}"
        (d / "empty.yml").write_text("global:\n  scrape_interval: 15s\n")
        port = free_port()
        sw = Proc([BIN, f"--web.listen-address=127.0.0.1:{port}", f"--storage.path={storage}",
                   f"--config.file={d / 'empty.yml'}"], str(d / "sidewatch.log"))
        started.append(sw)
        url = f"http://127.0.0.1:{port}"

        def sw_ready():
            if not sw.alive():
                raise AssertionError("sidewatch exited:\n" + sw.output())
            return requests.get(url + "/-/ready", timeout=2).status_code == 200
        wait_until(sw_ready, what="sidewatch ready")
        out["sidewatch"] = Api("sidewatch", url)

        if shutil.which("prometheus") and shutil.which("promtool"):
            blocks = str(d / "prom-data")
            p = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, blocks],
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, f"promtool create-blocks-from: {p.returncode}\n{p.stdout}{p.stderr}"
            (d / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
            pport = free_port()
            prom = Proc(["prometheus", f"--config.file={d / 'prometheus.yml'}",
                         f"--storage.tsdb.path={blocks}", f"--web.listen-address=127.0.0.1:{pport}"],
                        str(d / "prometheus.log"))
            started.append(prom)
            purl = f"http://127.0.0.1:{pport}"

            def prom_ready():
                if not prom.alive():
                    raise AssertionError("prometheus exited:\n" + prom.output())
                return requests.get(purl + "/-/ready", timeout=2).status_code == 200
            wait_until(prom_ready, timeout=30, what="Prometheus ready")
            out["prometheus"] = Api("prometheus", purl)
        yield out
    finally:
        problems = []
        for proc in started:
            was_running = proc.alive()
            rc = proc.stop()
            if proc is started[0]:
                out_ = proc.output()
                if any(m in out_ for m in SANITIZER_MARKERS):
                    problems.append(f"sanitizer report from sidewatch:\n{out_[-4000:]}")
                elif was_running and rc != 0:
                    problems.append(f"sidewatch exited {rc} on SIGTERM:\n{out_[-2000:]}")
        assert not problems, "\n".join(problems)


def need_prometheus(data):
    if data["prometheus"] is None:
        skip_or_fail("prometheus/promtool not found (Debian package prometheus, installed by scripts/install-deps.sh)")
    return data["prometheus"]


# ---- 2. every query parses ------------------------------------------------------------------

def test_every_query_parses(data):
    api = data["sidewatch"]
    exprs = [(qid, e) for qid, e, _ in QUERIES] + [(qid, s) for qid, s, _ in VARIABLE_QUERIES if s]
    assert len(exprs) > 40
    problems = []
    for qid, expr in exprs:
        r = requests.post(api.url + "/api/v1/parse_query", data={"query": expr}, timeout=10)
        if r.status_code != 200 or r.json().get("status") != "success":
            problems.append(f"{qid}: {expr}\n  {r.status_code} {r.text[:300]}")
    assert not problems, "\n".join(problems)


def test_parser_rejects_what_grafana_would_leave_unsubstituted(data):
    """The parse check above can fail: an unsubstituted variable is a parse error."""
    api = data["sidewatch"]
    r = requests.post(api.url + "/api/v1/parse_query",
                      data={"query": "rate(http_requests_total[$__rate_interval])"}, timeout=10)
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data", r.text


# ---- 3./4. non-empty in sidewatch and in Prometheus, and the same answers -------------------

def eval_times(fx):
    """An instant time near the end of the fixture, and a half-hour range,
    off the 15 s sample grid as real scrapes are: a sample exactly on a
    window's left edge is inside it in Prometheus 2.x and outside in 3.x."""
    t = fx.end - 37
    return t, (fx.end - 1807, fx.end - 7, 60)


def result_map(data_):
    """{frozenset(labels): [values]} of a vector/matrix/scalar result."""
    kind, res = data_["resultType"], data_["result"]
    if kind == "scalar":
        return {frozenset(): [float(res[1])]}
    if kind == "vector":
        return {frozenset(s["metric"].items()): [float(s["value"][1])] for s in res}
    return {frozenset(s["metric"].items()): [float(v[1]) for v in s["values"]] for s in res}


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def check(api, data_fx):
    t, (rs, re_, step) = eval_times(data_fx)
    problems = []
    answers = {}
    for qid, expr, kind in QUERIES:
        inst = api.query(expr, t)
        rng = None if kind == "table" else api.query_range(expr, rs, re_, step)
        answers[qid] = (inst, rng)
        if not inst["result"]:
            problems.append(f"{qid}: instant query at {t} empty: {expr}")
        if rng is not None and not rng["result"]:
            problems.append(f"{qid}: range query empty: {expr}")
    for qid, sel, label in VARIABLE_QUERIES:
        vals = api.label_values(label, sel, data_fx.start, data_fx.end)
        answers[qid] = vals
        if not vals:
            problems.append(f"{qid}: label_values({sel}, {label}) empty")
        if sel:
            via_series = api.series_label_values(label, sel, data_fx.start, data_fx.end)
            if via_series != sorted(vals):
                problems.append(f"{qid}: /api/v1/series gives {via_series}, /api/v1/label gives {vals}")
    return answers, problems


def test_queries_return_data_in_sidewatch(data):
    _, problems = check(data["sidewatch"], data["fx"])
    assert not problems, "\n".join(problems)


def test_queries_return_data_in_prometheus(data):
    prom = need_prometheus(data)
    _, problems = check(prom, data["fx"])
    assert not problems, "\n".join(problems)


def test_sidewatch_and_prometheus_agree(data):
    """Same series and values from both on the same data (so a dashboard
    shows the same thing whichever datasource Grafana uses)."""
    prom = need_prometheus(data)
    sw_ans, _ = check(data["sidewatch"], data["fx"])
    pr_ans, _ = check(prom, data["fx"])
    problems = []
    for qid in sw_ans:
        s, p = sw_ans[qid], pr_ans[qid]
        if isinstance(s, list):
            if sorted(s) != sorted(p):
                problems.append(f"{qid}: label values sidewatch {s} prometheus {p}")
            continue
        for which, a, b in (("instant", s[0], p[0]), ("range", s[1], p[1])):
            if a is None:
                continue
            ma, mb = result_map(a), result_map(b)
            if set(ma) != set(mb):
                problems.append(f"{qid} {which}: series sidewatch {sorted(map(sorted, ma))} "
                                f"prometheus {sorted(map(sorted, mb))}")
                continue
            for k in ma:
                if len(ma[k]) != len(mb[k]) or not all(same(x, y) for x, y in zip(ma[k], mb[k])):
                    problems.append(f"{qid} {which} {dict(k)}: sidewatch {ma[k][:5]}... "
                                    f"prometheus {mb[k][:5]}...")
                    break
    assert not problems, "\n".join(problems[:30])


def promql_regex_value(v):
    """A variable value as Grafana puts it into a =~ matcher: regex
    metacharacters escaped, inside a PromQL double-quoted string."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", v).replace("\\", "\\\\")


def test_one_variable_value_narrows_the_panels(data):
    """Choosing one value of a variable (the others All): every query that
    uses the variable still runs, returns only series whose labels fit, and
    is non-empty for at least one of the variable's values."""
    api = data["sidewatch"]
    fx = data["fx"]
    t, _ = eval_times(fx)
    problems = []
    checked = 0
    for path in DASHBOARDS:
        d = load(path)
        base = os.path.basename(path)[: -len(".json")]
        qvars = {v["name"]: v for v in d["templating"]["list"] if v.get("type") == "query"}
        for name, v in qvars.items():
            m = LABEL_VALUES_RE.match(variable_query(v))
            sel = substitute(m.group(1), qvars) if m.group(1) else None
            values = api.label_values(m.group(2), sel, fx.start, fx.end)
            assert values, f"{base}: ${name} has no values"
            for p in panels(d):
                for tg in p.get("targets", []):
                    if f"${name}" not in tg["expr"]:
                        continue
                    hits = 0
                    for val in values:
                        expr = tg["expr"].replace(f"${{{name}}}", f"${name}")
                        expr = re.sub(rf"\${name}\b", lambda _: promql_regex_value(val), expr)
                        expr = substitute(expr, qvars)
                        res = api.query(expr, t)["result"]
                        checked += 1
                        if res:
                            hits += 1
                        # A series that still carries the filtered label has the chosen value.
                        label = m.group(2)
                        for series in res if isinstance(res, list) else []:
                            got = series.get("metric", {}).get(label)
                            if got is not None and got != val:
                                problems.append(f"{base}: {p['title']} [{tg['refId']}] ${name}={val}: "
                                                f"series with {label}={got}")
                    if not hits:
                        problems.append(f"{base}: {p['title']} [{tg['refId']}]: empty for every value of "
                                        f"${name} {values}")
    assert checked > 100
    assert not problems, "\n".join(problems[:30])


def test_the_checks_can_fail(data):
    """A query about a metric the fixture lacks comes back empty (so the
    non-empty checks above are real), and a variable selector that matches
    nothing gives no label values."""
    api = data["sidewatch"]
    t, _ = eval_times(data["fx"])
    assert api.query('sum(rate(http_requests_total{job="no-such-job"}[1m]))', t)["result"] == []
    assert api.label_values("name", 'container_last_seen{name="no-such"}', data["fx"].start, data["fx"].end) == []
