#!/usr/bin/python3
"""Container stats: what one collection cycle costs sidewatch, against the
Docker stats API's time for the same containers, in the same script.

1. A generated cgroup v2 tree of N containers (default 100; every file
   cgroup.c reads, in kernel formats, copied from tests/data/cgroupv2) and
   a fake engine on a unix socket listing them: sidewatch's
   sidewatch_containers_cycle_duration_seconds over several 1 s cycles.
2. The real engine (scripts/engine.sh; needs root, docker.io,
   busybox-static; skipped with the reason otherwise) with 20 idle
   busybox containers:
   - the Docker stats API: GET /containers/{id}/stats?stream=false for
     each container one after the other (what a poller does per container),
     and ?stream=false&one-shot=true for all 20 at once;
   - sidewatch's cycle time from cgroups and from the stats API
     (cgroup_root: ""), and its CPU use (utime+stime from /proc) over
     BENCH_SECONDS (default 60) at a 15 s interval.

Usage: bench/containers.py [N_FIXTURE_CONTAINERS]   (run by `make bench`)
Everything listens on 127.0.0.1 or unix sockets; every process started
here is stopped by its PID (dockerd through scripts/engine.sh stop)."""
import http.client
import json
import os
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
ENGINE_SH = os.path.join(REPO, "scripts", "engine.sh")
FIXTURE = os.path.join(REPO, "tests", "data", "cgroupv2", "fs", "system.slice",
                       "docker-ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743.scope")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
DURATION = int(os.environ.get("BENCH_SECONDS", "60"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Sidewatch:
    def __init__(self, tmp, containers_yaml):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = os.path.join(tmp, f"sw-{self.port}.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\ncontainers:\n" + containers_yaml)
        self.log = open(os.path.join(tmp, f"sw-{self.port}.log"), "wb")
        self.p = subprocess.Popen([BIN, f"--config.file={cfg}",
                                   f"--storage.path={tmp}/data-{self.port}",
                                   f"--web.listen-address=127.0.0.1:{self.port}"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 30
        while time.time() < end:
            try:
                metrics(self.url)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("sidewatch did not start")

    def cycles(self, n, timeout=120, want=None):
        """Cycle durations (s) of the next n cycles (after `want` containers are seen)."""
        out, last = [], metric(metrics(self.url), "sidewatch_containers_cycles_total")
        end = time.time() + timeout
        while len(out) < n and time.time() < end:
            time.sleep(0.05)
            m = metrics(self.url)
            c = metric(m, "sidewatch_containers_cycles_total")
            if c != last:
                last = c
                seen = sum(float(l.split()[-1]) for l in m.splitlines()
                           if l.startswith("sidewatch_containers_seen{") and "none" not in l)
                if want is None or seen == want:
                    out.append(metric(m, "sidewatch_containers_cycle_duration_seconds"))
        return out

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


# ---- 1. fixture tree + fake engine -------------------------------------------------

class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    ids = []
    stopping = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, obj, status=200):
        b = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        p = self.path.split("/", 2)[-1] if self.path.startswith("/v1.") else self.path.lstrip("/")
        ids = self.server.ids
        if p == "version":
            return self.send_json({"Version": "20.10.24", "ApiVersion": "1.41"})
        if p == "info":
            return self.send_json({"CgroupDriver": "cgroupfs", "CgroupVersion": "2",
                                   "NCPU": os.cpu_count(), "MemTotal": 1 << 34})
        if p.startswith("events"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while not self.server.stopping:
                time.sleep(0.2)
            return
        if p.startswith("containers/json"):
            return self.send_json([{"Id": i, "Names": [f"/c{k}"], "Image": "img", "State": "running",
                                    "Labels": {"com.docker.compose.service": f"svc{k % 10}"}}
                                   for k, i in enumerate(ids)])
        if p.startswith("containers/") and p.endswith("/json"):
            i = p.split("/")[1]
            if i not in ids:
                return self.send_json({"message": "No such container"}, 404)
            k = ids.index(i)
            return self.send_json({
                "Id": i, "Name": f"/c{k}", "Image": "sha256:00",
                "Config": {"Image": "img", "Labels": {"com.docker.compose.service": f"svc{k % 10}"}},
                "State": {"Status": "running", "Running": True, "Pid": os.getpid(),
                          "StartedAt": "2026-11-25T10:00:00Z"},
                "HostConfig": {"NetworkMode": "none", "Memory": 134217728}})
        return self.send_json({"message": "page not found"}, 404)


def bench_fixture(tmp):
    root = os.path.join(tmp, "cgroup")
    os.makedirs(os.path.join(root, "docker"))
    shutil.copy(os.path.join(REPO, "tests/data/cgroupv2/fs/cgroup.controllers"), root)
    ids = []
    for k in range(N):
        i = f"{k:064x}"
        d = os.path.join(root, "docker", i)
        shutil.copytree(FIXTURE, d)
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(f"{os.getpid()}\n")
        ids.append(i)
    sock = os.path.join(tmp, "fake.sock")
    srv = FakeEngine(sock, Handler)
    srv.ids = ids
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    sw = Sidewatch(tmp, f"  docker_host: unix://{sock}\n  interval: 1s\n  cgroup_root: {root}\n")
    try:
        d = sw.cycles(8, want=N)
        if len(d) < 8:
            raise SystemExit(f"fixture: fewer than 8 cycles with {N} containers")
        ms = statistics.median(d[2:]) * 1000
        print(f"fixture cgroup v2 tree, {N} containers: one cycle {ms:.1f} ms (median of "
              f"{len(d) - 2}; min {min(d[2:]) * 1000:.1f}, max {max(d[2:]) * 1000:.1f}) "
              f"= {ms / N:.3f} ms per container (reads, exposition and the store commit)")
    finally:
        sw.stop()
        srv.stopping = True
        srv.shutdown()
        srv.server_close()


# ---- 2. the real engine -------------------------------------------------------------------

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def api_get(sock, path):
    c = UnixHTTP(sock)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def bench_engine(tmp):
    d = tempfile.mkdtemp(prefix="sw-bench-engine.", dir="/tmp")
    p = subprocess.run([ENGINE_SH, "start", d], capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        print(f"real engine: skipped ({p.stderr.strip() or 'engine.sh exit ' + str(p.returncode)})")
        return
    sock = os.path.join(d, "docker.sock")
    env = dict(os.environ, DOCKER_HOST="unix://" + sock)
    try:
        ids = []
        for k in range(20):
            ids.append(subprocess.run(
                ["docker", "run", "-d", "--network", "none", "--name", f"bench-idle-{k}",
                 "local/busybox:latest", "sleep", "3600"],
                capture_output=True, text=True, env=env, check=True).stdout.strip())

        # The Docker stats API, one container after the other (stream=false
        # waits for a second sample, as docker stats does per container).
        t = time.time()
        for i in ids:
            assert api_get(sock, f"/v1.41/containers/{i}/stats?stream=false") == 200
        seq = time.time() - t
        # ... and one-shot for all 20 at once (sidewatch's fallback).
        t = time.time()
        with ThreadPoolExecutor(20) as ex:
            st = list(ex.map(lambda i: api_get(
                sock, f"/v1.41/containers/{i}/stats?stream=false&one-shot=true"), ids))
        assert all(s == 200 for s in st)
        conc = time.time() - t
        print(f"Docker stats API, 20 containers: stream=false one after the other {seq:.2f} s "
              f"({seq / 20 * 1000:.0f} ms per container); one-shot, all 20 at once {conc:.2f} s")

        # sidewatch, cgroup path and stats API path: cycle times.
        sw = Sidewatch(tmp, f"  docker_host: unix://{sock}\n  interval: 1s\n")
        try:
            cg = sw.cycles(6, want=20)
        finally:
            sw.stop()
        sw = Sidewatch(tmp, f"  docker_host: unix://{sock}\n  interval: 2s\n  cgroup_root: \"\"\n")
        try:
            api = sw.cycles(4, want=20)
        finally:
            sw.stop()
        cgm = statistics.median(cg[1:]) * 1000
        apim = statistics.median(api[1:]) * 1000
        print(f"sidewatch, 20 containers: one cycle from cgroups {cgm:.1f} ms "
              f"(median of {len(cg) - 1}); from the stats API {apim:.0f} ms "
              f"(median of {len(api) - 1}); the stats API one after the other / sidewatch "
              f"cgroups = {seq * 1000 / cgm:.0f}x")

        # sidewatch's CPU at a 15 s interval over DURATION seconds.
        sw = Sidewatch(tmp, f"  docker_host: unix://{sock}\n  interval: 15s\n")
        try:
            time.sleep(3)
            c0, t0 = cpu_seconds(sw.p.pid), time.time()
            time.sleep(DURATION)
            c1, t1 = cpu_seconds(sw.p.pid), time.time()
            with open(f"/proc/{sw.p.pid}/status") as f:
                rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
        finally:
            sw.stop()
        print(f"sidewatch at a 15 s interval with 20 containers, {DURATION} s: "
              f"CPU {100 * (c1 - c0) / (t1 - t0):.3f} % of one core "
              f"({(c1 - c0) * 1000:.0f} ms CPU), RSS {int(rss) / 1024:.1f} MiB (target < 1 %)")
    finally:
        s = subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=180)
        if s.returncode == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"engine.sh stop {d} failed: {s.stderr}")


def main():
    tmp = tempfile.mkdtemp(prefix="sidewatch-bench-containers-")
    try:
        bench_fixture(tmp)
        bench_engine(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
