"""The example production stack in docker/: docker-compose.prod.yml as
Debian's docker-compose 1.29 resolves it with .env.example, the settings in
.env.example, sidewatch's docker/sidewatch.yml (`sidewatch check config`),
docker/alertmanager.yml (`amtool check-config`), and the example app
(docker/app) run for real against redis-server and scraped by sidewatch."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
import yaml

from conftest import BIN, REPO, Proc, free_port, skip_or_fail, wait_until

DOCKER = os.path.join(REPO, "docker")
COMPOSE = os.path.join(DOCKER, "docker-compose.prod.yml")
ENV_EXAMPLE = os.path.join(DOCKER, ".env.example")
SIDEWATCH_YML = os.path.join(DOCKER, "sidewatch.yml")
APP_DIR = os.path.join(DOCKER, "app")

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def run(args, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(args, capture_output=True, text=True, **kw)


def clean_env():
    """Only what docker-compose needs: no stray variable of the caller's
    environment may override .env.example."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env["COMPOSE_PROJECT_NAME"] = "sidewatchtest"
    return env


def read_env_file(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        assert k not in out, f"{path}: {k} set twice"
        out[k] = v
    return out


def compose_config(env_file):
    if not shutil.which("docker-compose"):
        skip_or_fail("docker-compose not found (Debian package docker-compose, installed by "
                     "scripts/install-deps.sh)")
    return run(["docker-compose", "-f", COMPOSE, "--env-file", env_file, "config"], cwd=REPO,
               env=clean_env())


@pytest.fixture(scope="module")
def config():
    p = compose_config(ENV_EXAMPLE)
    assert p.returncode == 0, f"docker-compose config failed:\n{p.stderr}"
    cfg = yaml.safe_load(p.stdout)
    assert isinstance(cfg, dict) and "services" in cfg, p.stdout[:2000]
    return cfg


def volumes_of(svc):
    """Volume strings as 1.29 prints them: SOURCE:TARGET:MODE."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            mode = "ro" if v.get("read_only") else "rw"
            out.append(f"{v['source']}:{v['target']}:{mode}")
        else:
            out.append(v)
    return out


def test_compose_config_with_env_example(config):
    assert set(config["services"]) >= {"sidewatch", "app", "redis", "nginx", "grafana",
                                       "alertmanager"}


def test_sidewatch_service(config):
    sw = config["services"]["sidewatch"]
    vols = volumes_of(sw)
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in vols
    assert "/sys/fs/cgroup:/host/sys/fs/cgroup:ro" in vols
    assert "sidewatch-data:/data:rw" in vols
    assert f"{SIDEWATCH_YML}:/etc/sidewatch/sidewatch.yml:ro" in vols
    assert "sidewatch-data" in config["volumes"]
    assert sw["read_only"] is True
    assert "/tmp" in sw["tmpfs"]
    assert str(sw["user"]) == "10001"
    env = read_env_file(ENV_EXAMPLE)
    assert [str(g) for g in sw["group_add"]] == [env["DOCKER_GID"]]
    assert sw["restart"] == "unless-stopped"
    assert sw["logging"]["driver"] == "json-file"
    assert sw["logging"]["options"] == {"max-size": env["LOG_MAX_SIZE"],
                                        "max-file": env["LOG_MAX_FILE"]}
    assert sw["healthcheck"]["test"] == ["CMD", "/usr/local/bin/sidewatch", "healthcheck"]
    # Limits both ways (compose 1.x: mem_limit/cpus; plugin/swarm: deploy),
    # the same values, from .env.
    limits = sw["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == float(sw["cpus"]) == float(env["SIDEWATCH_CPUS"])
    assert str(limits["memory"]) == str(sw["mem_limit"]) == env["SIDEWATCH_MEMORY"]
    assert sw["image"] == "sidewatch:latest"
    assert os.path.realpath(sw["build"]["context"]) == os.path.realpath(REPO)
    assert sw["build"]["dockerfile"] == "docker/Dockerfile"
    assert os.path.isfile(SIDEWATCH_YML)
    cmd = sw["command"]
    assert "--config.file=/etc/sidewatch/sidewatch.yml" in cmd
    assert "--storage.path=/data" in cmd
    assert f"--storage.retention.time={env['SIDEWATCH_RETENTION']}" in cmd
    assert sw["ports"] == [f"{env['SIDEWATCH_BIND']}:{env['SIDEWATCH_PORT']}:9277/tcp"]
    assert env["SIDEWATCH_BIND"] == "127.0.0.1"
    assert set(sw["networks"]) == {"frontend", "backend"}
    assert "ALL" in sw["cap_drop"]


def test_networks_and_exposure(config):
    nets = config["networks"]
    assert nets["backend"].get("internal") is True
    assert not nets["frontend"].get("internal")
    svcs = config["services"]
    for name in ("app", "redis"):
        assert set(svcs[name]["networks"]) == {"backend"}, name
        assert not svcs[name].get("ports"), f"{name} must not publish ports"
    # The proxy reaches the app; Grafana reaches sidewatch; sidewatch
    # reaches the app (scrapes) and Alertmanager.
    assert {"frontend", "backend"} <= set(svcs["nginx"]["networks"])
    assert "frontend" in svcs["grafana"]["networks"]
    assert "frontend" in svcs["alertmanager"]["networks"]
    env = read_env_file(ENV_EXAMPLE)
    for name, svc in svcs.items():
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name} publishes {p} beyond localhost by default"
    assert env["HTTP_BIND"] == env["GRAFANA_BIND"] == env["ALERTMANAGER_BIND"] == "127.0.0.1"


def test_every_service_restarts_rotates_logs_and_is_limited(config):
    for name, svc in config["services"].items():
        assert svc.get("restart") == "unless-stopped", name
        assert svc["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(svc["logging"]["options"]), name
        assert svc.get("mem_limit"), f"{name} has no memory limit"
        assert svc["deploy"]["resources"]["limits"]["memory"] == svc["mem_limit"], name


def test_app_and_optional_services(config):
    svcs = config["services"]
    app = svcs["app"]
    assert app["labels"]["prometheus.io/scrape"] == "true"
    assert str(app["labels"]["prometheus.io/port"]) == "8000"
    assert os.path.realpath(app["build"]["context"]) == os.path.realpath(APP_DIR)
    assert os.path.isfile(os.path.join(APP_DIR, "Dockerfile"))
    assert svcs["redis"]["image"].startswith("redis:7-alpine")
    assert svcs["nginx"]["image"].startswith("nginx:1.27-alpine")
    assert re.match(r"grafana/grafana:11\.", svcs["grafana"]["image"])
    assert svcs["alertmanager"]["profiles"] == ["alertmanager"]
    assert svcs["loadgen"]["profiles"] == ["demo"]
    for name in ("sidewatch", "app", "redis", "nginx", "grafana"):
        assert not svcs[name].get("profiles"), f"{name} must start by default"
    env = read_env_file(ENV_EXAMPLE)
    assert svcs["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == env["GRAFANA_ADMIN_PASSWORD"]
    assert svcs["app"]["environment"]["REDIS_PASSWORD"] == env["REDIS_PASSWORD"]


def test_bind_mounts_exist(config):
    """Every file or directory of the repository that the stack mounts is
    there (Grafana's provisioning and dashboards come from the dashboards
    work; in CI they must be there)."""
    host_paths = {"/var/run/docker.sock", "/sys/fs/cgroup"}
    missing, pending = [], []
    for name, svc in config["services"].items():
        for v in volumes_of(svc):
            src = v.split(":")[0]
            if not src.startswith("/") or src in host_paths:
                continue
            assert os.path.realpath(src).startswith(os.path.realpath(REPO) + os.sep), (name, src)
            if not os.path.exists(src):
                rel = os.path.relpath(src, REPO)
                (pending if rel.startswith(("docker/grafana", "dashboards")) else missing).append(
                    f"{name}: {rel}")
    assert not missing, f"mounted but not in the repository: {missing}"
    home = config["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/var/lib/grafana/dashboards/")
    home_src = os.path.join(REPO, "dashboards", os.path.basename(home))
    if not os.path.exists(home_src):
        pending.append(f"grafana home dashboard: dashboards/{os.path.basename(home)}")
    if pending:
        skip_or_fail(f"Grafana provisioning/dashboards not in this tree yet: {pending}")


def compose_vars():
    text = open(COMPOSE).read()
    out = {}
    for m in VAR_RE.finditer(text):
        out.setdefault(m.group(1), set()).add((m.group(2), m.group(3)))
    return out


def test_env_example_has_every_variable_with_the_compose_default():
    used = compose_vars()
    assert used, "no ${VAR} in the compose file?"
    env = read_env_file(ENV_EXAMPLE)
    assert set(used) - set(env) == set(), f"not in .env.example: {sorted(set(used) - set(env))}"
    assert set(env) - set(used) == set(), f"in .env.example but unused: {sorted(set(env) - set(used))}"
    for var, forms in used.items():
        ops = {op for op, _ in forms}
        assert None not in ops, f"${{{var}}} without a default or a required marker"
        assert len(ops) == 1, f"{var} used both with :- and :? ({forms})"
        op = ops.pop()
        if op == ":-":
            defaults = {d for _, d in forms}
            assert defaults == {env[var]}, f"{var}: compose default {defaults} != .env.example {env[var]!r}"
        else:
            # A secret: no default in the compose file, a placeholder here.
            assert op == ":?", (var, op)
            assert "PASSWORD" in var or "SECRET" in var, f"{var} is required but not a secret"
            assert env[var] and "change-me" in env[var], f"{var}: placeholder expected in .env.example"


def test_env_file_values_reach_the_stack(tmp_path):
    """Changed .env values show up in the resolved config (the variables are
    really wired), and a missing secret stops compose with its name."""
    env = read_env_file(ENV_EXAMPLE)
    changed = dict(env, SIDEWATCH_PORT="19277", SIDEWATCH_MEMORY="300M", DOCKER_GID="4242",
                   SIDEWATCH_RETENTION="30d", LOG_MAX_SIZE="5m", GRAFANA_ADMIN_PASSWORD="s3cret")
    path = tmp_path / "changed.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in changed.items()))
    p = compose_config(str(path))
    assert p.returncode == 0, p.stderr
    sw = yaml.safe_load(p.stdout)["services"]
    assert sw["sidewatch"]["ports"] == ["127.0.0.1:19277:9277/tcp"]
    assert str(sw["sidewatch"]["mem_limit"]) == "300M"
    assert [str(g) for g in sw["sidewatch"]["group_add"]] == ["4242"]
    assert "--storage.retention.time=30d" in sw["sidewatch"]["command"]
    assert sw["nginx"]["logging"]["options"]["max-size"] == "5m"
    assert sw["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret"

    for secret in ("GRAFANA_ADMIN_PASSWORD", "REDIS_PASSWORD"):
        without = {k: v for k, v in env.items() if k != secret}
        path = tmp_path / f"no-{secret}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in without.items()))
        p = compose_config(str(path))
        assert p.returncode != 0, f"compose started without {secret}"
        assert secret in p.stderr, p.stderr


def readme_sidecar_block():
    """The YAML block of docker/README.md marked as the sidecar block."""
    text = open(os.path.join(DOCKER, "README.md")).read()
    m = re.search(r"<!-- sidecar-block:[^>]*-->\s*```yaml\n(.*?)```", text, re.S)
    assert m, "docker/README.md has no marked sidecar block"
    return m.group(1)


def test_readme_sidecar_block_in_an_existing_compose_file(tmp_path):
    """The one block of docker/README.md, merged into someone's compose
    file, resolves with docker-compose and gives sidewatch what the example
    stack gives it."""
    block = yaml.safe_load(readme_sidecar_block())
    assert set(block) == {"services", "volumes"} and set(block["services"]) == {"sidewatch"}
    existing = {
        "version": "3.8",
        "services": {
            "api": {"image": "python:3.12-slim", "labels": {"prometheus.io/scrape": "true"}},
            "db": {"image": "postgres:16-alpine", "volumes": ["db-data:/var/lib/postgresql/data"]},
        },
        "volumes": {"db-data": {}},
    }
    existing["services"].update(block["services"])
    existing["volumes"].update(block["volumes"])
    d = tmp_path / "existing"
    d.mkdir()
    (d / "docker-compose.yml").write_text(yaml.safe_dump(existing, sort_keys=False))
    (d / ".env").write_text("DOCKER_GID=998\n")
    if not shutil.which("docker-compose"):
        skip_or_fail("docker-compose not found (Debian package docker-compose)")
    p = run(["docker-compose", "config"], cwd=str(d), env=clean_env())
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    sw = cfg["services"]["sidewatch"]
    example = compose_config(ENV_EXAMPLE)
    ex = yaml.safe_load(example.stdout)["services"]["sidewatch"]
    for key in ("user", "read_only", "restart", "cap_drop", "security_opt", "tmpfs"):
        assert sw[key] == ex[key], key
    assert sw["group_add"] == ["998"] or [str(g) for g in sw["group_add"]] == ["998"]
    vols = volumes_of(sw)
    for v in ("/var/run/docker.sock:/var/run/docker.sock:ro",
              "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "sidewatch-data:/data:rw"):
        assert v in vols, (v, vols)
    assert sw["image"] == "sidewatch:latest"
    assert sw["mem_limit"] and sw["cpus"]
    assert sw["logging"]["driver"] == "json-file" and "max-size" in sw["logging"]["options"]
    assert sw["ports"] == ["127.0.0.1:9277:9277/tcp"]
    assert {"sidewatch-data", "db-data"} <= set(cfg["volumes"])


# ---- docker/sidewatch.yml -----------------------------------------------------------------

def check_config(path):
    return run([BIN, "check", "config", str(path)])


def test_sidewatch_yml_passes_check_config():
    p = check_config(SIDEWATCH_YML)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_sidewatch_yml_contents():
    cfg = yaml.safe_load(open(SIDEWATCH_YML))
    assert cfg["rule_files"][0] == "/etc/sidewatch/rules/*.yml"
    ct = cfg["containers"]
    assert ct["cgroup_root"] == "/host/sys/fs/cgroup"
    assert ct["docker_host"] == "unix:///var/run/docker.sock"
    assert ct.get("enabled", True) is True
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["sidewatch"]["static_configs"][0]["targets"] == ["localhost:9277"]
    docker = jobs["docker"]
    assert docker["docker_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"
    keep = docker["relabel_configs"][0]
    assert keep == {"source_labels": ["__meta_docker_container_label_prometheus_io_scrape"],
                    "regex": "true", "action": "keep"}
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_sidewatch_yml_loads_the_shipped_rules(tmp_path):
    """With rule_files pointing at the repository's rules/ (as the image's
    /etc/sidewatch/rules holds them), the config loads every shipped file."""
    text = open(SIDEWATCH_YML).read()
    assert "/etc/sidewatch/rules/*.yml" in text
    rules = sorted(glob.glob(os.path.join(REPO, "rules", "*.yml")))
    assert rules
    path = tmp_path / "sidewatch.yml"
    path.write_text(text.replace("/etc/sidewatch/rules/*.yml", os.path.join(REPO, "rules", "*.yml")))
    p = check_config(path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(rules)} rule files found" in p.stdout, p.stdout


def webhook_example():
    """The commented `# webhooks:` block of sidewatch.yml, uncommented."""
    lines = open(SIDEWATCH_YML).read().splitlines()
    start = lines.index("# webhooks:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(block) + "\n"


def test_webhook_example_is_valid(tmp_path):
    example = webhook_example()
    parsed = yaml.safe_load(example)
    hook = parsed["webhooks"][0]
    assert hook["url"].startswith("https://") and hook["name"]
    base = open(SIDEWATCH_YML).read()
    path = tmp_path / "with-webhook.yml"
    path.write_text(base + example)
    p = check_config(path)
    assert p.returncode == 0, p.stdout + p.stderr
    # The check does look at the section: a broken URL fails it.
    path.write_text(base + example.replace(hook["url"], "ftp://hooks.example.com/x"))
    p = check_config(path)
    assert p.returncode != 0 and "webhook url" in p.stdout + p.stderr, p.stdout + p.stderr


def test_alertmanager_yml():
    amtool = shutil.which("amtool")
    if not amtool:
        skip_or_fail("amtool not found (Debian package prometheus-alertmanager, installed by "
                     "scripts/install-deps.sh)")
    p = run([amtool, "check-config", os.path.join(DOCKER, "alertmanager.yml")])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


# ---- the example app, for real --------------------------------------------------------------

APP_MODULES = ("fastapi", "uvicorn", "prometheus_client", "redis")


def start_example_app(tmp_path, procs):
    """redis-server and the example app (uvicorn) on free ports; returns the
    app's base URL. Skipped (failed in CI) without the Debian packages."""
    probe = run([sys.executable, "-c", "import " + ", ".join(APP_MODULES)])
    if probe.returncode != 0 or not shutil.which("redis-server"):
        skip_or_fail("python3-fastapi, python3-uvicorn, python3-prometheus-client, python3-redis "
                     "or redis-server missing (scripts/install-deps.sh installs them): "
                     + probe.stderr.strip()[-200:])
    rport, aport = free_port(), free_port()
    redis_p = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--requirepass",
                    "pw-test", "--save", "", "--appendonly", "no"], str(tmp_path / "redis.log"))
    procs.append(redis_p)
    env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport), REDIS_PASSWORD="pw-test",
               CACHE_TTL_SECONDS="600", PROMETHEUS_DISABLE_CREATED_SERIES="True")
    app = Proc([sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port",
                str(aport), "--no-access-log"], str(tmp_path / "app.log"), cwd=APP_DIR, env=env)
    procs.append(app)
    base = f"http://127.0.0.1:{aport}"

    def healthy():
        if not app.alive():
            raise AssertionError("app exited:\n" + app.output())
        return requests.get(base + "/healthz", timeout=2).status_code == 200
    wait_until(healthy, what="example app")
    return base


def test_example_app_metrics_scraped_by_sidewatch(tmp_path, procs, start_sidewatch):
    """The app (docker/app/main.py) with Debian's fastapi, uvicorn,
    prometheus-client and redis against a real redis-server: its /metrics
    has the names and labels the shipped rules use, with counts matching the
    requests made, and sidewatch scrapes and queries them."""
    base = start_example_app(tmp_path, procs)
    aport = int(base.rsplit(":", 1)[1])

    hits = misses = ok = 0
    for i in [1, 2, 3, 1, 1, 2, 4, 1]:
        r = requests.get(f"{base}/items/{i}", timeout=5)
        assert r.status_code == 200, r.text
        ok += 1
        if r.json()["cached"]:
            hits += 1
        else:
            misses += 1
    assert hits == 4 and misses == 4, (hits, misses)  # 1 x3, 2 x1 again: Redis really caches
    assert requests.get(f"{base}/fail", timeout=5).status_code == 500
    assert requests.get(f"{base}/no/such/path", timeout=5).status_code == 404

    r = requests.get(base + "/metrics", timeout=5)
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    assert samples["cache_hits_total"] == hits
    assert samples["cache_misses_total"] == misses
    assert samples['http_requests_total{method="GET",route="/items/{item_id}",status="200"}'] == ok
    assert samples['http_requests_total{method="GET",route="/fail",status="500"}'] == 1
    assert samples['http_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    assert samples['http_request_duration_seconds_count{method="GET",route="/items/{item_id}"}'] == ok
    inf = 'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/items/{item_id}"}'
    assert samples[inf] == ok
    assert "process_resident_memory_bytes" in samples
    assert not any(s.endswith("_created") or "_created{" in s for s in samples)

    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['127.0.0.1:{aport}']
""")

    def query(q):
        r = requests.get(sw.url + "/api/v1/query", params={"query": q}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def two_scrapes():
        for i in [5, 5, 6]:
            requests.get(f"{base}/items/{i}", timeout=5)
        return query('count_over_time(up{job="app"}[1m]) >= 3') and query('up{job="app"} == 1')
    wait_until(two_scrapes, timeout=30, interval=0.5, what="three scrapes of the app")
    # The shapes of the shipped rules' expressions (rules/app.yml) over the
    # app's series give a value per job.
    for q in [
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[1m])))',
        'sum by (job) (rate(http_requests_total{status=~"5.."}[1m])) >= 0',
        'sum by (job) (rate(cache_hits_total[1m])) / (sum by (job) (rate(cache_hits_total[1m])) '
        '+ sum by (job) (rate(cache_misses_total[1m])))',
        'process_resident_memory_bytes{job="app"}',
    ]:
        res = query(q)
        assert [r["metric"].get("job") for r in res] == ["app"], (q, res)
        assert res[0]["value"][1] not in ("NaN", "+Inf", "-Inf"), (q, res)
    hit_ratio = float(query('cache_hits_total{job="app"} / (cache_hits_total + cache_misses_total)')[0]["value"][1])
    assert 0 < hit_ratio < 1


# ---- docker/sidewatch.yml against a real engine ---------------------------------------------

def test_sidewatch_yml_real_engine(docker_engine, procs, tmp_path):
    """docker/sidewatch.yml itself, with only its host paths pointed at the
    private dockerd (socket, cgroup root as the host sees it, the
    repository's rules, short intervals): a busybox httpd labelled like a
    compose service (prometheus.io/scrape, com.docker.compose.service) is
    discovered and scraped with job = the service name, measured by the
    container collector with only the compose labels kept, the shipped rules
    load and evaluate, and the unreachable Alertmanager does not hurt."""
    import uuid
    from conftest import Sidewatch
    eng = docker_engine
    port, hport = free_port(), free_port()
    text = open(SIDEWATCH_YML).read()
    for old, new in [("unix:///var/run/docker.sock", eng.host),
                     ("/host/sys/fs/cgroup", "/sys/fs/cgroup"),
                     ("localhost:9277", f"127.0.0.1:{port}"),
                     ("/etc/sidewatch/rules/*.yml", os.path.join(REPO, "rules", "*.yml")),
                     ("scrape_interval: 15s", "scrape_interval: 1s"),
                     ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                     ("refresh_interval: 15s", "refresh_interval: 1s")]:
        assert old in text, old
        text = text.replace(old, new)
    www = tmp_path / "www"
    www.mkdir()
    (www / "metrics").write_text("# TYPE demo_requests_total counter\ndemo_requests_total 7\n")
    name = f"sw-compose-web-{uuid.uuid4().hex[:8]}"
    try:
        cid = eng.docker("run", "-d", "--name", name, "--network", "host", "-v", f"{www}:/www:ro",
                         "--label", "prometheus.io/scrape=true",
                         "--label", f"prometheus.io/port={hport}",
                         "--label", "com.docker.compose.service=web",
                         "--label", "com.docker.compose.project=shop",
                         "--label", "unrelated.label=x",
                         eng.IMAGE, "/bin/httpd", "-f", "-p", f"127.0.0.1:{hport}", "-h", "/www")
        wait_until(lambda: requests.get(f"http://127.0.0.1:{hport}/metrics", timeout=2).ok,
                   timeout=20, what="busybox httpd")
        sw = Sidewatch(tmp_path, text, extra_args=[f"--web.listen-address=127.0.0.1:{port}"],
                       name="compose-sidewatch")
        procs.append(sw)
        sw.port, sw.url = port, f"http://127.0.0.1:{port}"
        sw.wait_ready()

        def query(q):
            r = requests.get(sw.url + "/api/v1/query", params={"query": q}, timeout=10)
            r.raise_for_status()
            return r.json()["data"]["result"]

        res = wait_until(lambda: query("demo_requests_total"), timeout=30, what="the labelled container scraped")
        assert res[0]["metric"] == {"__name__": "demo_requests_total", "job": "web",
                                    "compose_project": "shop", "container": name,
                                    "instance": f"localhost:{hport}"}
        assert res[0]["value"][1] == "7"
        wait_until(lambda: query('up{job="sidewatch"} == 1'), timeout=30, what="the self-scrape")
        # Container stats from the cgroup tree, with the compose labels only.
        mem = wait_until(lambda: query(f'container_memory_working_set_bytes{{name="{name}"}}'),
                         timeout=30, what="container stats")
        labels = mem[0]["metric"]
        assert labels["id"].endswith(cid) or cid.startswith(labels["id"].rsplit("/", 1)[-1])
        assert labels["container_label_com_docker_compose_service"] == "web"
        assert labels["container_label_com_docker_compose_project"] == "shop"
        assert not any("unrelated" in k for k in labels), labels
        # The self-scrape does not store container_* a second time.
        assert query('count(container_memory_working_set_bytes{job="sidewatch"})') == []
        # The shipped rules are loaded and evaluate without errors.
        groups = wait_until(lambda: [g for g in requests.get(sw.url + "/api/v1/rules", timeout=10)
                                     .json()["data"]["groups"] if g["lastEvaluation"] and
                                     not g["lastEvaluation"].startswith("0001")],
                            timeout=30, what="rule groups evaluated")
        names = {g["name"] for g in requests.get(sw.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]}
        assert {"sidewatch-thresholds", "sidewatch-app", "sidewatch-containers", "sidewatch-targets",
                "sidewatch-self"} <= names, names
        for g in groups:
            for r in g["rules"]:
                assert r["health"] != "err", (g["name"], r)
        # The Alertmanager of the optional profile is not there: sidewatch
        # keeps running and stays healthy.
        assert requests.get(sw.url + "/-/healthy", timeout=5).status_code == 200
        assert sw.alive()
    finally:
        eng.docker("rm", "-f", name, check=False)


def test_nginx_conf_proxies_the_app(tmp_path, procs):
    """docker/nginx/nginx.conf under Debian's nginx, with only its paths,
    listen address and upstream moved for the test: proxies the example app,
    answers its own health check, keeps /metrics private."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        skip_or_fail("nginx not found (Debian package nginx, installed by scripts/install-deps.sh)")
    base = start_example_app(tmp_path, procs)
    aport = base.rsplit(":", 1)[1]
    nport = free_port()
    text = open(os.path.join(DOCKER, "nginx", "nginx.conf")).read()
    (tmp_path / "cache").mkdir()
    for old, new in [("pid /var/run/nginx.pid;", f"pid {tmp_path}/nginx.pid;"),
                     ("/var/cache/nginx", f"{tmp_path}/cache"),
                     ("server app:8000;", f"server 127.0.0.1:{aport};"),
                     ("listen 8080;", f"listen 127.0.0.1:{nport};")]:
        assert old in text, old
        text = text.replace(old, new)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    args = [nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)]
    p = run(args + ["-t"])
    assert p.returncode == 0, p.stderr
    ng = Proc(args + ["-g", "daemon off;"], str(tmp_path / "nginx.log"))
    procs.append(ng)
    url = f"http://127.0.0.1:{nport}"

    def up():
        if not ng.alive():
            raise AssertionError("nginx exited:\n" + ng.output())
        return requests.get(url + "/nginx-health", timeout=2).text == "ok\n"
    wait_until(up, what="nginx")
    r = requests.get(url + "/items/7", timeout=5)
    assert r.status_code == 200 and r.json()["id"] == 7, r.text
    assert requests.get(url + "/items/7", timeout=5).json()["cached"] is True
    assert requests.get(url + "/fail", timeout=5).status_code == 500
    assert requests.get(url + "/metrics", timeout=5).status_code == 404
    # The app counted the proxied requests, and only those.
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 2.0' in metrics
    assert 'http_requests_total{method="GET",route="/fail",status="500"} 1.0' in metrics
