"""The command line: check config (like promtool), flags, and errors."""
import os
import shutil
import signal
import subprocess

import pytest
import requests

from conftest import BIN, REPO, Proc, free_port, wait_until

SHARED = os.environ.get("SIDEWATCH_SHARED", os.path.join(REPO, "..", "shared"))
CONF = os.path.join(SHARED, "conformance", "config")


def run(*args, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30, **kw)


def test_check_config_good(tmp_path):
    f = tmp_path / "ok.yml"
    (tmp_path / "rules.yml").write_text("groups: []\n")
    f.write_text("global:\n  scrape_interval: 15s\nrule_files: ['rules.yml']\nscrape_configs:\n"
                 "  - job_name: a\n    static_configs:\n      - targets: ['localhost:1']\n")
    p = run("check", "config", str(f))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"Checking {f}" in p.stdout
    assert "SUCCESS: 1 rule files found" in p.stdout
    assert f"SUCCESS: {f} is valid prometheus config file syntax" in p.stdout


def test_check_config_reports_position(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("global:\n  scrape_interval: 15s\n  nonexistent_field: 1\n")
    p = run("check", "config", str(f))
    assert p.returncode == 1
    assert "FAILED" in p.stdout
    assert f"{f}:3:3: field nonexistent_field not found in type config.plain" in p.stdout, p.stdout


def require_shared():
    if not os.path.isdir(CONF):
        if os.environ.get("CI"):
            pytest.fail(f"conformance data missing at {CONF}")
        pytest.skip(f"conformance data not found at {CONF} (clone next to ../shared)")


def test_check_config_conformance_bad_files():
    require_shared()
    with open(os.path.join(CONF, "EXPECTED_ERRORS.tsv")) as f:
        rows = [l.rstrip("\n").split("\t", 1) for l in f if l.strip() and not l.startswith("#")]
    failed = []
    for name, want in rows:
        p = run("check", "config", os.path.join(CONF, name))
        if p.returncode != 1 or want not in p.stdout:
            failed.append((name, want, p.stdout))
    for f in failed:
        print("FAILED conformance case %s: want %r in:\n%s" % f)
    print(f"check config conformance: {len(rows) - len(failed)} passed, {len(failed)} failed")
    assert not failed


def test_flags():
    p = run("--help")
    assert p.returncode == 0 and "--config.file" in p.stdout and "--storage.retention.time" in p.stdout
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("sidewatch, version ")
    p = run("--no-such-flag")
    assert p.returncode == 1 and "unknown long flag '--no-such-flag'" in p.stderr
    p = run("--log.level=loud")
    assert p.returncode == 1 and "--log.level" in p.stderr
    p = run("--storage.retention.time=forever")
    assert p.returncode == 1 and "not a valid duration string" in p.stderr


def test_bad_config_refused_at_start(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n")
    p = run(f"--config.file={f}", f"--storage.path={tmp_path}/d", "--web.listen-address=127.0.0.1:0")
    assert p.returncode == 1
    assert f"{f}:" in p.stderr and "scrape timeout greater than scrape interval" in p.stderr


def test_listen_address_in_use(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        p = run(f"--web.listen-address=127.0.0.1:{port}", f"--storage.path={tmp_path}/d")
        assert p.returncode == 1
        assert f"listen tcp 127.0.0.1:{port}: bind: Address already in use" in p.stderr
    finally:
        s.close()


def test_healthcheck(start_sidewatch):
    """`sidewatch healthcheck [URL]` (the image's HEALTHCHECK): 0 on 200,
    1 with a one-line reason otherwise, 2 on bad usage."""
    sw = start_sidewatch()
    p = run("healthcheck", sw.url + "/-/healthy")
    assert p.returncode == 0, p.stderr
    p = run("healthcheck", sw.url + "/no-such-path")
    assert p.returncode == 1
    assert p.stderr.strip() == f"sidewatch: healthcheck: {sw.url}/no-such-path: HTTP status 404"
    closed = free_port()
    p = run("healthcheck", f"http://127.0.0.1:{closed}/-/healthy")
    assert p.returncode == 1
    assert f"127.0.0.1:{closed}/-/healthy" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run("healthcheck", "a", "b")
    assert p.returncode == 2 and "usage: sidewatch healthcheck [URL]" in p.stderr
    p = run("--help")
    assert "sidewatch healthcheck [URL]" in p.stdout


def test_healthcheck_follows_pid1_listen_address(tmp_path, procs):
    """With no URL, healthcheck checks the address PID 1 listens on when
    PID 1 is sidewatch (as inside the image): sidewatch runs as PID 1 of a
    new PID namespace on a port that is not the default, and healthcheck,
    run in that namespace, finds it."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs root, unshare and nsenter for a PID namespace")
    port = free_port()
    p = Proc(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", BIN,
              f"--web.listen-address=127.0.0.1:{port}", f"--storage.path={tmp_path}/data"],
             str(tmp_path / "pid1.log"))
    procs.append(p)
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/-/healthy", timeout=2).status_code == 200,
               what="sidewatch as PID 1")
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        child = int(f.read().split()[0])
    inside = ["nsenter", "-t", str(child), "-p", "-m", BIN, "healthcheck"]
    r = subprocess.run(inside, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # unshare ignores SIGTERM while it waits: stop sidewatch itself.
    os.kill(child, signal.SIGTERM)
    assert p.p.wait(20) == 0, p.output()
