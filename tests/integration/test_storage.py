"""The storage engine end to end: SIGKILL during sustained ingestion loses
no acknowledged sample; a damaged database is refused with a clear error;
`sidewatch check store`, `sidewatch dump` and `sidewatch import
openmetrics`."""
import os
import random
import signal
import subprocess
import time

from conftest import BIN, TEXT, Sidewatch, wait_until


def dump(storage, match='{__name__=~".+"}'):
    p = subprocess.run([BIN, "dump", storage, f"--match={match}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        series, value, ts = line.rsplit(" ", 2)
        out[(series, int(ts))] = float(value)
    return out


def federate_key(series):
    """'m{a="b",job="x"}' -> the dump form '{__name__="m", a="b", job="x"}'."""
    name, rest = series.split("{", 1)
    parts = [f'__name__="{name}"'] + [p for p in rest.rstrip("}").split(",") if p]
    return "{" + ", ".join(sorted(parts, key=lambda p: p.split("=")[0])) + "}"


def test_sigkill_during_ingestion_loses_nothing(tmp_path, procs, target):
    counter = {"n": 0}
    def metrics(handler):
        counter["n"] += 1
        n = counter["n"]
        body = "".join(f'load{{i="{i}"}} {n * 1000 + i}\n' for i in range(500)).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", TEXT)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    target.routes["/m"] = metrics
    storage = str(tmp_path / "store")
    cfg = f"""
global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
  - job_name: load
    metrics_path: /m
    static_configs:
      - targets: ['{target.addr}']
"""
    seen = {}  # (series, ts) -> value, acknowledged before a kill
    rnd = random.Random(7)
    for round_ in range(8):
        sw = Sidewatch(tmp_path, cfg, name=f"r{round_}", storage=storage)
        procs.append(sw)
        sw.wait_ready()
        deadline = time.time() + rnd.uniform(0.5, 2.5)
        while time.time() < deadline:
            for series, (v, ts) in sw.federate_samples('{job="load",i=~"1?7"}').items():
                seen[(federate_key(series), ts)] = v
            time.sleep(0.05)
        sw.stop(signal.SIGKILL)
    assert len(seen) > 40, len(seen)
    stored = dump(storage, '{job="load"}')
    missing = [k for k in seen if k not in stored]
    wrong = [k for k in seen if k in stored and stored[k] != seen[k]]
    assert not missing and not wrong, (missing[:5], wrong[:5], len(seen))
    # Every scrape is whole: each stored timestamp has all 500 series.
    per_ts = {}
    for (series, ts) in stored:
        if series.startswith('{__name__="load"'):
            per_ts[ts] = per_ts.get(ts, 0) + 1
    assert set(per_ts.values()) == {500}, {k: v for k, v in per_ts.items() if v != 500}
    p = subprocess.run([BIN, "check", "store", storage], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def test_damaged_database_is_refused(tmp_path):
    storage = tmp_path / "store"
    storage.mkdir()
    (storage / "sidewatch.db").write_bytes(b"this is not a database" * 500)
    p = subprocess.run([BIN, f"--storage.path={storage}", "--web.listen-address=127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "file is not a database" in p.stderr, p.stderr
    p = subprocess.run([BIN, "check", "store", str(storage)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "file is not a database" in p.stdout


def test_storage_path_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    p = subprocess.run([BIN, f"--storage.path={f}", "--web.listen-address=127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "storage" in p.stderr and "Not a directory" in p.stderr, p.stderr


def test_import_openmetrics_roundtrip(tmp_path):
    om = tmp_path / "in.om"
    lines = ["# HELP http_requests Requests.", "# TYPE http_requests counter"]
    for i in range(300):
        for code in ("200", "500"):
            lines.append(f'http_requests_total{{code="{code}"}} {i * (2 if code == "200" else 1)} {1700000000 + i * 15}')
    lines += ["# TYPE temp gauge", 'temp{room="a"} 21.5 1700000000.5', 'temp{room="a"} -3e-2 1699999000', "# EOF"]
    om.write_text("\n".join(lines) + "\n")
    storage = str(tmp_path / "store")
    p = subprocess.run([BIN, "import", "openmetrics", str(om), f"--storage.path={storage}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "imported 602 samples of 3 series" in p.stdout, p.stdout
    stored = dump(storage)
    assert stored[('{__name__="http_requests_total", code="200"}', 1700000015000)] == 2
    assert stored[('{__name__="temp", room="a"}', 1699999000000)] == -0.03  # out of order in the file
    assert stored[('{__name__="temp", room="a"}', 1700000000500)] == 21.5
    assert len(stored) == 602
    # Errors import nothing and say where.
    bad = tmp_path / "bad.om"
    bad.write_text('a 1 1700000000\nb{x="y} 2 1700000000\n# EOF\n')
    store2 = str(tmp_path / "store2")
    p = subprocess.run([BIN, "import", "openmetrics", str(bad), f"--storage.path={store2}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and f"{bad}:2:" in p.stderr and "nothing was imported" in p.stderr, p.stderr
    assert dump(store2) == {}
    nots = tmp_path / "nots.om"
    nots.write_text("a 1\n# EOF\n")
    p = subprocess.run([BIN, "import", "openmetrics", str(nots), f"--storage.path={store2}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and 'expected timestamp for series {__name__="a"}, got none' in p.stderr


def test_import_matches_promtool(tmp_path):
    """The same OpenMetrics file imported by sidewatch and by the real
    `promtool tsdb create-blocks-from openmetrics`: every sample, value for
    value (bit for bit, as the dumps print them), is the same in both."""
    rnd = random.Random(7)
    om = tmp_path / "in.om"
    lines = ["# HELP req Requests.", "# TYPE req counter"]
    for s in range(20):
        c = 0
        for i in range(400):
            c += rnd.randint(0, 9)
            lines.append(f'req_total{{code="{200 + s}"}} {c} {1700000000 + i * 15}')
    lines += ["# TYPE temp_celsius gauge", "# UNIT temp_celsius celsius"]
    for s in range(10):
        for i in range(300):
            v = rnd.choice([round(rnd.uniform(-40, 40), 2), rnd.random(), float(i), "NaN", "+Inf", "-Inf", -0.0])
            lines.append(f'temp_celsius{{room="r{s}"}} {v} {1700000000 + i * 7.5:.3f}')
    lines.append("# EOF")
    om.write_text("\n".join(lines) + "\n")
    storage = str(tmp_path / "sw")
    p = subprocess.run([BIN, "import", "openmetrics", str(om), f"--storage.path={storage}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    prom = str(tmp_path / "prom")
    p = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), prom],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    os.makedirs(os.path.join(prom, "wal"), exist_ok=True)  # dump opens the directory as a TSDB
    p = subprocess.run(["promtool", "tsdb", "dump", "--min-time=0", prom],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    theirs = {}
    for line in p.stdout.splitlines():
        series, value, ts = line.rsplit(" ", 2)
        theirs[(series, int(ts))] = value
    ours = {}
    d = subprocess.run([BIN, "dump", storage], capture_output=True, text=True, timeout=120)
    assert d.returncode == 0, d.stderr
    for line in d.stdout.splitlines():
        series, value, ts = line.rsplit(" ", 2)
        ours[(series, int(ts))] = value
    assert len(theirs) == 20 * 400 + 10 * 300
    missing = [k for k in theirs if k not in ours]
    extra = [k for k in ours if k not in theirs]
    differ = [(k, ours[k], theirs[k]) for k in theirs if k in ours and ours[k] != theirs[k]]
    assert not missing and not extra and not differ, (missing[:5], extra[:5], differ[:5])


def test_read_only_directory_is_refused(tmp_path):
    """A read-only storage directory (a read-only bind mount in a private
    mount namespace: as root, permissions alone do not stop writes) gives a
    clear error at start-up, for a new and for an existing store."""
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare"):
        import pytest
        pytest.skip("needs root and unshare(1) for a read-only bind mount")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    existing = tmp_path / "existing"
    om = tmp_path / "one.om"
    om.write_text("up 1 1700000000\n# EOF\n")
    p = subprocess.run([BIN, "import", "openmetrics", str(om), f"--storage.path={existing}"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    for d in (fresh, existing):
        script = (f"mount --bind {d} {d} && mount -o remount,ro,bind {d} && "
                  f"exec {BIN} --storage.path={d} --web.listen-address=127.0.0.1:0")
        p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (d, p.stdout, p.stderr)
        assert "Read-only file system" in p.stderr, p.stderr
