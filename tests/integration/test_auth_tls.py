"""Scrape client settings: basic_auth, authorization (inline and from a
file, with surrounding whitespace trimmed), bearer_token, https with
tls_config (ca_file, cert_file/key_file client certificates,
insecure_skip_verify), enable_compression: false, and target_limit."""
import http.server
import os
import ssl
import subprocess
import threading

from conftest import TEXT, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


class TLSTarget:
    def __init__(self, d, require_client_cert):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                cert = self.connection.getpeercert()
                seen.append(cert)
                body = b"tls_metric 1\n"
                self.send_response(200)
                self.send_header("Content-Type", TEXT)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(os.path.join(d, "ca.crt"))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_credentials_are_sent(start_sidewatch, target, tmp_path):
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"m 1\n")
    token = tmp_path / "token"
    token.write_text("  s3cr3t-from-file\n")
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: basic
    metrics_path: /m
    basic_auth: {{username: alice, password: wonderland}}
    static_configs: [{{targets: ['{target.addr}']}}]
  - job_name: authz
    metrics_path: /m
    authorization: {{type: Token, credentials_file: {token}}}
    static_configs: [{{targets: ['{target.addr}']}}]
  - job_name: bearer
    metrics_path: /m
    bearer_token: abc123
    enable_compression: false
    static_configs: [{{targets: ['{target.addr}']}}]
""")
    wait_until(lambda: len(sw.federate_samples('m')) == 3, what="three jobs scraped")
    auths = {h.get("Authorization") for _, h in target.requests}
    assert "Basic YWxpY2U6d29uZGVybGFuZA==" in auths  # alice:wonderland
    assert "Token s3cr3t-from-file" in auths
    assert "Bearer abc123" in auths
    encodings = {h.get("Authorization"): h.get("Accept-Encoding") for _, h in target.requests}
    assert encodings["Bearer abc123"] == "identity"
    assert encodings["Token s3cr3t-from-file"] == "gzip"
    # Secrets never reach the logs.
    assert "wonderland" not in sw.output() and "s3cr3t" not in sw.output() and "abc123" not in sw.output()


def test_https_targets(start_sidewatch, tmp_path):
    make_pki(str(tmp_path))
    plain = TLSTarget(str(tmp_path), require_client_cert=False)
    mtls = TLSTarget(str(tmp_path), require_client_cert=True)
    try:
        sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: verified
    scheme: https
    tls_config: {{ca_file: {tmp_path}/ca.crt}}
    static_configs: [{{targets: ['{plain.addr}']}}]
  - job_name: untrusted
    scheme: https
    static_configs: [{{targets: ['{plain.addr}']}}]
  - job_name: insecure
    scheme: https
    tls_config: {{insecure_skip_verify: true}}
    static_configs: [{{targets: ['{plain.addr}']}}]
  - job_name: client_cert
    scheme: https
    tls_config: {{ca_file: {tmp_path}/ca.crt, cert_file: {tmp_path}/client.crt, key_file: {tmp_path}/client.key}}
    static_configs: [{{targets: ['{mtls.addr}']}}]
  - job_name: no_client_cert
    scheme: https
    tls_config: {{ca_file: {tmp_path}/ca.crt}}
    static_configs: [{{targets: ['{mtls.addr}']}}]
""")
        ups = wait_until(lambda: (lambda s: s if len(s) == 5 else None)(sw.federate_samples("up")),
                         what="all five scraped")
        by_job = {k.split('job="')[1].split('"')[0]: v[0] for k, v in ups.items()}
        assert by_job == {"verified": 1, "untrusted": 0, "insecure": 1, "client_cert": 1,
                          "no_client_cert": 0}, by_job
        assert any(c and ("commonName", "client") in [x for rdn in c["subject"] for x in rdn]
                   for c in mtls.seen)
        log = sw.output()
        assert "certificate" in log.lower()  # the untrusted job's reason
    finally:
        plain.close()
        mtls.close()


def test_target_limit(start_sidewatch, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"m 1\n")
    sw = start_sidewatch(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: limited
    metrics_path: /m
    target_limit: 2
    static_configs:
      - targets: ['{target.addr}', 'localhost:{target.addr.split(":")[1]}', '[::1]:{target.addr.split(":")[1]}']
""")
    ups = wait_until(lambda: (lambda s: s if len(s) == 3 else None)(sw.federate_samples('up{job="limited"}')),
                     what="three targets reported")
    assert all(v == 0 for v, _ in ups.values()), ups
    assert "target_limit exceeded (number of targets: 3, limit: 2)" in sw.output()
    assert not sw.federate_samples('m{job="limited"}')
