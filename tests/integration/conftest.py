"""Fixtures for the integration tests: the real ./sidewatch binary against
real peers from Debian (prometheus-node-exporter, prometheus, promtool, a
private dockerd from scripts/engine.sh) and small controllable HTTP targets
served from this process.

Every process a test starts is stopped by its PID when the test ends.
Network traffic stays on 127.0.0.1 and unix sockets.
"""
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout=20.0, interval=0.1, what="condition"):
    """Polls fn until it returns a truthy value; returns it or fails."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (requests.RequestException, OSError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Proc:
    """A child process with its output captured to a file."""

    def __init__(self, args, log_path, cwd=None, env=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        self.pid = self.p.pid

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()
        return self.p.returncode


class Sidewatch(Proc):
    def __init__(self, tmp_path, config_text=None, extra_args=(), name="sidewatch", storage=None,
                 lifecycle=True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = storage or str(tmp_path / f"{name}-data")
        args = [BIN, f"--web.listen-address=127.0.0.1:{self.port}", f"--storage.path={self.storage}",
                "--log.level=debug"]
        if lifecycle:
            args.append("--web.enable-lifecycle")
        self.config_path = None
        if config_text is not None:
            self.config_path = str(tmp_path / f"{name}.yml")
            with open(self.config_path, "w") as f:
                f.write(config_text)
            args.append(f"--config.file={self.config_path}")
        args += list(extra_args)
        super().__init__(args, str(tmp_path / f"{name}.log"))

    def wait_ready(self):
        def ready():
            if not self.alive():
                raise AssertionError("sidewatch exited:\n" + self.output())
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200
        wait_until(ready, what="sidewatch ready")
        return self

    def federate(self, *matches):
        r = requests.get(self.url + "/federate", params=[("match[]", m) for m in matches], timeout=10)
        r.raise_for_status()
        return r.text

    def federate_samples(self, *matches):
        """Parses /federate output into {series: (value, ts)}."""
        out = {}
        for line in self.federate(*matches).splitlines():
            if not line or line.startswith("#"):
                continue
            series, value, ts = line.rsplit(" ", 2)
            out[series] = (float(value), int(ts))
        return out

    def metrics(self, accept=None):
        headers = {"Accept": accept} if accept else {}
        r = requests.get(self.url + "/metrics", headers=headers, timeout=10)
        r.raise_for_status()
        return r


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture
def procs():
    """Processes a test started; all are stopped by PID afterwards. A
    sidewatch that was still running must exit 0 on SIGTERM, and no
    sidewatch may have printed a sanitizer report (ASan/UBSan builds)."""
    started = []
    yield started
    problems = []
    for p in started:
        was_running = p.alive()
        rc = p.stop()
        if isinstance(p, Sidewatch):
            out = p.output()
            if any(m in out for m in SANITIZER_MARKERS):
                problems.append(f"sanitizer report from {p.args}:\n{out[-4000:]}")
            elif was_running and rc != 0:
                problems.append(f"sidewatch exited {rc} on SIGTERM:\n{out[-2000:]}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def start_sidewatch(tmp_path, procs):
    def start(config_text=None, **kw):
        sw = Sidewatch(tmp_path, config_text, **kw)
        procs.append(sw)
        return sw.wait_ready()
    return start


@pytest.fixture
def node_exporter(tmp_path, procs):
    port = free_port()
    p = Proc(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"],
             str(tmp_path / "node_exporter.log"))
    procs.append(p)
    addr = f"127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"http://{addr}/metrics", timeout=2).status_code == 200,
               what="node_exporter")
    return addr


class Target:
    """An HTTP server whose responses a test controls per path:
    routes[path] = (status, headers dict, body bytes) or a callable(handler)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                target.requests.append((self.path, dict(self.headers)))
                route = target.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if callable(route):
                    route(self)
                    return
                status, headers, body = route
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


# ---- a real Docker engine (scripts/engine.sh) ---------------------------------------------

ENGINE_SH = os.path.join(REPO, "scripts", "engine.sh")


def skip_or_fail(reason):
    """A test that cannot run here is skipped with the reason; in CI (CI set)
    it fails instead, so nothing is silently left out."""
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class DockerEngine:
    """A private dockerd started by scripts/engine.sh: its socket, the
    busybox image (local/busybox:latest, from busybox-static), the docker
    client pointed at it, and raw Engine API GETs."""

    IMAGE = "local/busybox:latest"

    def __init__(self, directory):
        self.dir = directory
        self.sock = os.path.join(directory, "docker.sock")
        self.host = "unix://" + self.sock
        with open(os.path.join(directory, "engine.pid")) as f:
            self.pid = int(f.read())

    def docker(self, *args, timeout=60, check=True):
        """Runs the docker client against this engine; returns stdout."""
        env = dict(os.environ, DOCKER_HOST=self.host)
        p = subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: exit {p.returncode}: {p.stderr}")
        return p.stdout.strip()

    def api(self, path, method="GET"):
        """An Engine API request over the socket; returns (status, parsed JSON or text)."""
        c = _UnixHTTPConnection(self.sock)
        try:
            c.request(method, path)
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
        finally:
            c.close()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body

    def log(self):
        with open(os.path.join(self.dir, "dockerd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")


@pytest.fixture(scope="session")
def docker_engine():
    """One private dockerd for the whole session (tests that need a real
    engine share it and remove their own containers). Skipped with the
    reason when this machine cannot run dockerd (not root, docker.io or
    busybox-static missing); under CI that is a failure. Stopped by the PID
    it recorded, its mounts unmounted, its directory removed."""
    if not os.path.exists(ENGINE_SH):
        pytest.fail(f"{ENGINE_SH} missing")
    # Short: unix socket paths (containerd's too) hold at most 107 bytes.
    d = tempfile.mkdtemp(prefix="sw-engine.", dir="/tmp")
    try:
        p = subprocess.run([ENGINE_SH, "start", d], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        pytest.fail("scripts/engine.sh start did not finish within 180 s")
    if p.returncode != 0:
        subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        if p.returncode == 77:
            skip_or_fail(p.stderr.strip() or "no Docker engine here")
        pytest.fail(f"scripts/engine.sh start failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    engine = DockerEngine(d)
    try:
        yield engine
    finally:
        s = subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
        if s.returncode == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"scripts/engine.sh stop {d} failed ({s.returncode}): {s.stderr}")


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`make check-integration` runs two workers,
    --dist loadgroup), a test file's tests stay on one worker, so its
    module-scoped peers start once, and every test that needs the private
    dockerd runs on the same worker, so only one engine is started."""
    for item in items:
        group = "docker" if "docker_engine" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
