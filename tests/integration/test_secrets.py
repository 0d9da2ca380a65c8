"""Outgoing credentials never leak (issue 10, item 2).

A config holds a distinctive secret in every place Prometheus treats as a
secret (basic_auth password and password_file, authorization credentials
and credentials_file, bearer_token and bearer_token_file, oauth2
client_secret, webhooks' hmac_secret; in scrape, remote_write,
alertmanager, webhook and docker_sd configs). sidewatch runs with
--log.level=debug and every client is made to fail: the scrape targets
answer 401, the Alertmanager, the webhook and the remote-write receiver
answer 500, the Docker host refuses connections, and a broken config is
reloaded. None of the secrets may then appear in the log, in
/api/v1/status/config, /api/v1/targets, /api/v1/alertmanagers or /metrics;
status/config shows each inline secret as <secret> and each *_file path as
written.
"""
import re
import subprocess
import time

import requests

from conftest import wait_until


def secret(i):
    return f"SWLEAK{i:02d}xq7"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_secrets_never_leak(tmp_path, start_sidewatch, target):
    # Scrapes are answered 401; notifications, remote write and the oauth2 token URL 500.
    def deny(h):
        n = int(h.headers.get("Content-Length", "0") or 0)
        if n:
            h.rfile.read(n)
        h.send_response(401)
        h.send_header("Content-Length", "0")
        h.end_headers()

    target.routes["/metrics"] = deny

    import http.server
    import threading

    posts = []

    class Fail(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            self.rfile.read(n)
            posts.append(self.path)
            body = b"receiver says no"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fail)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    fail = f"127.0.0.1:{srv.server_address[1]}"
    try:
        files = {i: write(tmp_path / f"secret{i}.txt", secret(i) + "\n") for i in (2, 4, 6, 13)}
        # A TLS client key given inline: its PEM body is a secret too.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=client", "-keyout", str(tmp_path / "k.pem"),
                        "-out", str(tmp_path / "c.pem")], check=True, capture_output=True)
        key_pem = (tmp_path / "k.pem").read_text()
        cert_pem = (tmp_path / "c.pem").read_text()
        key_line = key_pem.splitlines()[3]  # a line of the key's base64 body
        indent_pem = lambda pem: "".join("        " + ln + "\n" for ln in pem.splitlines())
        rules = write(tmp_path / "rules.yml", """
groups:
  - name: g
    interval: 1s
    rules:
      - alert: Always
        expr: vector(1)
""")
        cfg = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: basic
    basic_auth: {{username: u1, password: {secret(1)}}}
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: basic_file
    basic_auth: {{username: u2, password_file: {files[2]}}}
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: authz
    authorization: {{type: Bearer, credentials: {secret(3)}}}
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: authz_file
    authorization: {{credentials_file: {files[4]}}}
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: bearer
    bearer_token: {secret(5)}
    http_headers:
      X-Api-Key:
        secrets: [{secret(16)}]
        values: [plain-header-value]
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: bearer_file
    bearer_token_file: {files[6]}
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: oauth
    oauth2:
      client_id: cid
      client_secret: {secret(7)}
      token_url: http://{fail}/token
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: tls
    scheme: https
    tls_config:
      cert: |
{indent_pem(cert_pem)}      key: |
{indent_pem(key_pem)}      insecure_skip_verify: true
    static_configs: [{{targets: ["{target.addr}"]}}]
  - job_name: dsd
    docker_sd_configs:
      - host: tcp://127.0.0.1:1
        refresh_interval: 1s
        basic_auth: {{username: u8, password: {secret(8)}}}
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{fail}"]}}]
      authorization: {{credentials: {secret(9)}}}
remote_write:
  - url: http://{fail}/api/v1/write
    basic_auth: {{username: u10, password: {secret(10)}}}
  - url: http://u17:{secret(17)}@{fail}/api/v1/write2
webhooks:
  - name: hook
    url: http://{fail}/hook
    group_wait: 0s
    group_interval: 1s
    bearer_token: {secret(11)}
    hmac_secret: {secret(12)}
  - name: hook2
    url: http://{fail}/hook2
    group_wait: 0s
    basic_auth: {{username: u13, password_file: {files[13]}}}
"""
        secrets = [secret(i) for i in range(1, 14)] + [secret(16), secret(17), key_line]
        sw = start_sidewatch(cfg)

        # Every client has failed at least once.
        def all_failed():
            t = requests.get(sw.url + "/api/v1/targets", timeout=5).json()["data"]
            act = t["activeTargets"]
            errs = [a for a in act if a["health"] == "down" and a["lastError"]]
            return len(errs) >= 8 and {"/api/v1/write", "/api/v1/write2", "/hook", "/hook2"} <= set(
                p.split("?")[0] for p in posts) and any("/api/v2/alerts" in p for p in posts)
        wait_until(all_failed, timeout=40, what="every client failing")
        # The secrets were really sent (so they were in memory, in use, when things failed).
        sent = [h.get("Authorization", "") for _, h in target.requests]
        assert f"Bearer {secret(3)}" in sent and f"Bearer {secret(5)}" in sent, sent
        assert f"Bearer {secret(6)}" in sent, sent
        # (a scrape config's http_headers are parsed and validated but not sent yet; their
        # secrets are still checked everywhere below.)
        # (oauth2 is parsed and validated but not used for requests yet, config.h: no token
        # request is made; its client_secret is still checked everywhere below.)

        # A reload with a broken config that carries secrets next to the errors.
        broken = cfg.replace(f"password: {secret(1)}", f"password: {{x: {secret(14)}}}").replace(
            f"bearer_token: {secret(5)}", f"bearer_token: [{secret(15)}]\n    bearer_token_file: x")
        write(sw.config_path, broken)
        r = requests.post(sw.url + "/-/reload", timeout=10)
        assert r.status_code != 200
        reload_err = r.text
        secrets += [secret(14), secret(15)]
        write(sw.config_path, cfg)
        time.sleep(2.5)  # one more round of failures, at debug level

        surfaces = {"reload response": reload_err}
        for path in ("/api/v1/status/config", "/api/v1/targets", "/api/v1/alertmanagers",
                     "/metrics", "/api/v1/targets?state=dropped"):
            surfaces[path] = requests.get(sw.url + path, timeout=10).text
        surfaces["log"] = sw.output()
        assert "--log.level=debug" in sw.args
        assert "Error reloading config" in surfaces["log"]
        for name, text in surfaces.items():
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{name} leaks {leaked}:\n" + "\n".join(
                ln for ln in text.splitlines() if any(s in ln for s in leaked))[:3000]

        y = requests.get(sw.url + "/api/v1/status/config", timeout=10).json()["data"]["yaml"]
        # Inline secrets are shown as <secret>, *_file paths as written.
        for key in ("password", "credentials", "bearer_token", "client_secret", "hmac_secret"):
            assert re.search(rf"^\s*{key}: <secret>$", y, re.M), f"{key} not masked:\n{y}"
        assert re.search(r"^\s*key: <secret>$", y, re.M), f"TLS key not masked:\n{y}"
        assert "BEGIN CERTIFICATE" in y  # a certificate is not a secret
        assert y.count("<secret>") == 11, y
        # A header's secrets are masked, its values are not; a URL's password is xxxxx.
        assert re.search(r"secrets:\n\s*- <secret>\n", y), y
        assert "plain-header-value" in y
        assert f"url: http://u17:xxxxx@{fail}/api/v1/write2" in y, y
        for i in (2, 4, 6, 13):
            assert files[i] in y, f"file path {files[i]} not shown:\n{y}"
    finally:
        srv.shutdown()
        srv.server_close()
