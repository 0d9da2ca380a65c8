"""--web.config.file (TLS, client certificates, basic auth, headers) and the
HTTP server limits, against the real binary (SIDEWATCH_BIN for the ASan
build). The PKI is made with openssl, bcrypt hashes with htpasswd (Debian's
apache2-utils); promtool queries through TLS and basic auth."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests

from conftest import Sidewatch, skip_or_fail, wait_until
from test_auth_tls import make_pki

CONFIG = "global:\n  scrape_interval: 1h\n"


def bcrypt_hash(user, password):
    if not shutil.which("htpasswd"):
        skip_or_fail("htpasswd not installed (apache2-utils)")
    out = subprocess.run(["htpasswd", "-nbBC", "4", user, password], check=True,
                         capture_output=True, text=True).stdout.strip()
    return out.split(":", 1)[1]


def start(tmp_path, procs, web_yml, extra=(), name="sw"):
    path = tmp_path / f"{name}-web.yml"
    path.write_text(web_yml)
    sw = Sidewatch(tmp_path, CONFIG, extra_args=[f"--web.config.file={path}", *extra], name=name)
    procs.append(sw)
    sw.url = sw.url.replace("http://", "https://")
    sw.web_path = path
    return sw


def wait_up(sw, **kw):
    def up():
        if not sw.alive():
            raise AssertionError("sidewatch exited:\n" + sw.output())
        try:
            requests.get(sw.url + "/-/healthy", timeout=2, **kw)
            return True
        except requests.exceptions.SSLError:
            return True  # the server answers TLS: up
        except requests.exceptions.ConnectionError:
            return False
    wait_until(up, what="sidewatch listening")


def tls_yml(d, extra=""):
    return (f"tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n"
            + extra)


def refused(sw, reason, **kw):
    text = requests.get(sw.url + "/metrics", timeout=5, **kw).text
    for line in text.splitlines():
        if line.startswith(f'sidewatch_http_requests_refused_total{{reason="{reason}"}} '):
            return float(line.split()[-1])
    return 0.0


def test_tls_and_basic_auth(tmp_path, procs):
    d = str(tmp_path)
    make_pki(d)
    h = bcrypt_hash("alice", "s3cret")
    sw = start(tmp_path, procs, tls_yml(d) + f"basic_auth_users:\n  alice: '{h}'\n"
               "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
               extra=["--web.healthy-unauthenticated"])
    ca = f"{d}/ca.crt"
    wait_up(sw, verify=ca)
    ok = requests.get(sw.url + "/-/ready", auth=("alice", "s3cret"), verify=ca, timeout=5)
    assert ok.status_code == 200
    assert ok.headers["X-Frame-Options"] == "deny"
    for auth in (None, ("alice", "wrong"), ("bob", "s3cret")):
        r = requests.get(sw.url + "/api/v1/query", params={"query": "1"}, auth=auth, verify=ca,
                         timeout=5)
        assert r.status_code == 401, auth
        assert r.headers["WWW-Authenticate"] == "Basic"
    # --web.healthy-unauthenticated: /-/healthy answers without credentials.
    assert requests.get(sw.url + "/-/healthy", verify=ca, timeout=5).status_code == 200
    # Plain HTTP on the TLS port gets no answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sw.url.replace("https://", "http://") + "/-/healthy", timeout=5)
    assert refused(sw, "unauthorized", auth=("alice", "s3cret"), verify=ca) >= 3
    # promtool through TLS and basic auth (promtool 2.42 has no
    # --http.config.file: credentials in the URL, the CA through Go's
    # SSL_CERT_FILE).
    env = dict(os.environ, SSL_CERT_FILE=ca)
    authed = sw.url.replace("https://", "https://alice:s3cret@")
    out = subprocess.run(["promtool", "query", "instant", authed, "1+1"], capture_output=True,
                         text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("scalar: 2 @["), out.stdout
    out = subprocess.run(["promtool", "query", "instant", authed.replace("s3cret", "nope"), "1+1"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0
    assert "401" in out.stderr or "nauthorized" in out.stderr, out.stderr
    # Reload (SIGHUP) re-reads the users: the new password works, the old not.
    h2 = bcrypt_hash("alice", "rotated")
    sw.web_path.write_text(tls_yml(d) + f"basic_auth_users:\n  alice: '{h2}'\n")
    sw.send_signal(signal.SIGHUP)
    q = sw.url + "/api/v1/query?query=1"
    wait_until(lambda: requests.get(q, auth=("alice", "rotated"), verify=ca,
                                    timeout=5).status_code == 200, what="new password")
    assert requests.get(q, auth=("alice", "s3cret"), verify=ca, timeout=5).status_code == 401


CLIENT_AUTH = [
    # mode, with CA, (no cert, good cert, cert of another CA) accepted?
    ("RequireAndVerifyClientCert", True, (False, True, False)),
    ("VerifyClientCertIfGiven", True, (True, True, False)),
    ("RequireAnyClientCert", False, (False, True, True)),
    ("NoClientCert", False, (True, True, True)),
]


@pytest.mark.parametrize("mode,with_ca,want", CLIENT_AUTH)
def test_client_auth_type(tmp_path, procs, mode, with_ca, want):
    d = str(tmp_path)
    make_pki(d)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    "other.key", "-out", "other.crt", "-days", "2", "-subj", "/CN=other"],
                   cwd=d, check=True, capture_output=True)
    extra = f"  client_auth_type: {mode}\n"
    if with_ca:
        extra += f"  client_ca_file: {d}/ca.crt\n"
    sw = start(tmp_path, procs, tls_yml(d, extra))
    ca = f"{d}/ca.crt"
    wait_up(sw, verify=ca, cert=(f"{d}/client.crt", f"{d}/client.key"))

    def accepted(cert):
        try:
            return requests.get(sw.url + "/-/healthy", verify=ca, cert=cert,
                                timeout=5).status_code == 200
        except requests.exceptions.ConnectionError:
            return False
    got = (accepted(None), accepted((f"{d}/client.crt", f"{d}/client.key")),
           accepted((f"{d}/other.crt", f"{d}/other.key")))
    assert got == want
    if not all(want):
        assert refused(sw, "client_certificate", verify=ca,
                       cert=(f"{d}/client.crt", f"{d}/client.key")) >= 1


def test_min_version(tmp_path, procs):
    d = str(tmp_path)
    make_pki(d)
    sw = start(tmp_path, procs, tls_yml(d, "  min_version: TLS13\n"))
    wait_up(sw, verify=f"{d}/ca.crt")
    port = int(sw.url.rsplit(":", 1)[1])

    def handshake(max_version):
        ctx = ssl.create_default_context(cafile=f"{d}/ca.crt")
        ctx.maximum_version = max_version
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                return t.version()
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_2)


def test_check_web_config(tmp_path):
    d = str(tmp_path)
    make_pki(d)
    good = tmp_path / "good.yml"
    good.write_text(tls_yml(d))
    bad = tmp_path / "bad.yml"
    bad.write_text(tls_yml(d, "  min_version: TLS111\n"))
    from conftest import BIN
    r = subprocess.run([BIN, "check", "web-config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and f"{good} SUCCESS" in r.stderr
    r = subprocess.run([BIN, "check", "web-config", str(good), str(bad)], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "unknown TLS version: TLS111" in r.stderr
    # promtool agrees on both.
    assert subprocess.run(["promtool", "check", "web-config", str(good)],
                          capture_output=True).returncode == 0
    assert subprocess.run(["promtool", "check", "web-config", str(bad)],
                          capture_output=True).returncode == 1


def test_server_limits(tmp_path, procs):
    sw = Sidewatch(tmp_path, CONFIG, extra_args=["--web.max-request-bytes=2048",
                                                 "--web.read-timeout=2s",
                                                 "--web.max-connections=4"])
    procs.append(sw)
    sw.wait_ready()
    # Body size: 413, counted (under /api/v1 an oversized form is
    # Prometheus's 400 bad_data, counted too).
    r = requests.post(sw.url + "/-/reload", data="x" * 4096, timeout=5)
    assert r.status_code == 413
    assert refused(sw, "body_too_large") == 1
    r = requests.post(sw.url + "/api/v1/query", data={"query": "1", "pad": "x" * 4096}, timeout=5)
    assert r.status_code == 400
    assert refused(sw, "body_too_large") == 2
    assert requests.post(sw.url + "/api/v1/query", data={"query": "1"},
                         timeout=5).status_code == 200
    # Header size: a request line and headers beyond the per-connection
    # memory are refused by libmicrohttpd (431 or 414).
    r = requests.get(sw.url + "/-/healthy", headers={"X-Big": "y" * (2 << 20)}, timeout=10)
    assert r.status_code in (413, 414, 431)
    port = int(sw.url.rsplit(":", 1)[1])
    # Read timeout: an idle connection is closed after --web.read-timeout.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert 0.9 < time.monotonic() - t0 < 6
    s.close()


def test_connection_limit(tmp_path, procs):
    # Connection limit: past --web.max-connections a connection is not
    # served (libmicrohttpd's epoll loop stops accepting at the limit, so it
    # waits in the listen backlog, as with Prometheus's LimitListener, or is
    # refused); once the held ones go, requests are served again.
    sw = Sidewatch(tmp_path, CONFIG, extra_args=["--web.max-connections=4"], name="conns")
    procs.append(sw)
    sw.wait_ready()
    port = int(sw.url.rsplit(":", 1)[1])
    # (Each idle connection is made to send a byte, so it is surely
    # accepted and held by the server before the probes.)
    idle = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"G")
        idle.append(s)
    time.sleep(0.3)
    got = []
    for _ in range(3):
        try:
            got.append(requests.get(sw.url + "/-/healthy", timeout=1).status_code)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            got.append("not served")
    assert got == ["not served"] * 3, got
    for s in idle:
        s.close()
    wait_until(lambda: requests.get(sw.url + "/-/healthy", timeout=3).status_code == 200,
               what="served again")
