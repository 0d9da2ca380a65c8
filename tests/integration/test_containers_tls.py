"""The container collector reaches a tcp:// engine over TLS with client
certificates: a fake engine (HTTPS on 127.0.0.1 that requires a client
certificate signed by its CA) serves /version, /info, a held-open /events
stream and an empty container list. sidewatch connects with the docker
CLI's environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) and
with the `containers.tls_config` section; with a CA that did not sign the
engine's certificate it refuses the engine and counts connect errors."""
import json
import re
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import wait_until

VERSION = {"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux",
           "Arch": "amd64", "KernelVersion": "6.1.0"}
INFO = {"CgroupDriver": "cgroupfs", "CgroupVersion": "1", "NCPU": 2, "MemTotal": 1 << 30}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem (+ its key), the engine's server certificate for 127.0.0.1,
    and a client cert.pem/key.pem signed by the same CA."""
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=d)
    # The docker CLI's file names for the client side.
    (d / "cert.pem").write_bytes((d / "client.pem").read_bytes())
    (d / "key.pem").write_bytes((d / "client-key.pem").read_bytes())
    return d


class FakeEngine:
    def __init__(self, pki):
        stop = self.stop_event = threading.Event()
        self.paths = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send_json(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                paths.append(path)
                tail = re.sub(r"^/v[0-9.]+", "", path)
                if tail == "/version":
                    self.send_json(VERSION)
                elif tail == "/info":
                    self.send_json(INFO)
                elif tail == "/containers/json":
                    self.send_json([])
                elif tail == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    stop.wait(60)  # held open like the engine's stream
                    self.close_connection = True
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server-key.pem"))
        ctx.load_verify_locations(str(pki / "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = f"tcp://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_engine(tmp_path):
    pki = make_pki(tmp_path / "pki")
    eng = FakeEngine(pki)
    eng.pki = pki
    yield eng
    eng.close()


def metric(sw, name):
    text = requests.get(sw.url + "/metrics", timeout=5).text
    vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")]
    return vals


CONFIG = ("global:\n  scrape_interval: 1s\n"
          "containers:\n  interval: 1s\n  cgroup_root: \"\"\n")


def engine_up(sw):
    return metric(sw, "sidewatch_containers_engine_up") == [1.0]


def test_tls_from_docker_cli_environment(tls_engine, start_sidewatch, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", tls_engine.host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tls_engine.pki))
    sw = start_sidewatch(CONFIG)
    wait_until(lambda: engine_up(sw), timeout=20, what="engine_up 1 over TLS (environment)")
    assert any(p.endswith("/containers/json") for p in tls_engine.paths)


def test_tls_from_config(tls_engine, start_sidewatch):
    pki = tls_engine.pki
    sw = start_sidewatch(CONFIG + f"  docker_host: {tls_engine.host}\n"
                         "  tls_config:\n"
                         f"    ca_file: {pki}/ca.pem\n"
                         f"    cert_file: {pki}/client.pem\n"
                         f"    key_file: {pki}/client-key.pem\n")
    wait_until(lambda: engine_up(sw), timeout=20, what="engine_up 1 over TLS (tls_config)")


def test_tls_wrong_ca_is_refused(tls_engine, start_sidewatch, tmp_path):
    other = make_pki(tmp_path / "other-pki")
    pki = tls_engine.pki
    sw = start_sidewatch(CONFIG + f"  docker_host: {tls_engine.host}\n"
                         "  tls_config:\n"
                         f"    ca_file: {other}/ca.pem\n"
                         f"    cert_file: {pki}/client.pem\n"
                         f"    key_file: {pki}/client-key.pem\n")

    def connect_errors():
        text = requests.get(sw.url + "/metrics", timeout=5).text
        m = re.search(r'^sidewatch_docker_errors_total\{reason="connect"\} (\S+)$', text, re.M)
        return m and float(m.group(1)) >= 1

    wait_until(connect_errors, timeout=20, what="a counted connect error")
    assert metric(sw, "sidewatch_containers_engine_up") == [0.0]
    assert not any(p.endswith("/containers/json") for p in tls_engine.paths)
