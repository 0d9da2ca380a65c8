"""Remote write to a real Prometheus 2.42 (--web.enable-remote-write-receiver
on 127.0.0.1): what sidewatch scrapes arrives, identical when queried with
`promtool query range` from both; an outage of the receiver, during which
sidewatch is restarted, loses and duplicates nothing."""
import random
import signal
import socket
import subprocess
import threading
import time

import requests

from conftest import Proc, Sidewatch, free_port, wait_until


class Counter:
    """/metrics: a counter that goes up by exactly 1 per scrape, so the
    values tell a missing or duplicated sample. serving=False answers 404
    (sidewatch then marks the series stale and the sample set is frozen)."""

    def __init__(self, target):
        self.n = 0
        self.serving = True
        self.lock = threading.Lock()
        target.routes["/metrics"] = self.serve

    def serve(self, h):
        with self.lock:
            if not self.serving:
                h.send_error(404)
                return
            self.n += 1
            body = f"# TYPE c counter\nc_total {self.n}\n".encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; version=0.0.4")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def start_receiver(tmp_path, procs, port, name):
    cfg = tmp_path / "receiver.yml"
    cfg.write_text("global: {}\n")
    p = Proc(["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
              f"--storage.tsdb.path={tmp_path / 'receiver-data'}", "--web.enable-remote-write-receiver"],
             str(tmp_path / f"{name}.log"))
    procs.append(p)
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200,
               timeout=30, what="Prometheus receiver ready")
    return p


def raw_samples(base, query="c_total[1h]"):
    """[(t, value)] of the one series a range selector returns."""
    r = requests.get(f"{base}/api/v1/query", params={"query": query, "time": time.time()}, timeout=5)
    r.raise_for_status()
    res = r.json()["data"]["result"]
    if not res:
        return []
    assert len(res) == 1, res
    return [(float(t), float(v)) for t, v in res[0]["values"]]


def promtool_range(base, start, end):
    p = subprocess.run(["promtool", "query", "range", "--start", f"{start:.3f}", "--end", f"{end:.3f}",
                        "--step", "250ms", base, 'c_total{job="t"}'], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def sw_config(target, rport):
    return f"""
global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: t
    static_configs:
      - targets: ['{target.addr}']
remote_write:
  - url: http://127.0.0.1:{rport}/api/v1/write
    name: receiver
    remote_timeout: 2s
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}
"""


def frozen_and_equal(sw, rbase, counter):
    """Stops the counter, then waits until the receiver holds exactly what
    sidewatch holds; returns the samples."""
    with counter.lock:
        counter.serving = False
    time.sleep(1.5)  # the last scrape and the staleness marker are committed

    def same():
        a, b = raw_samples(sw.url), raw_samples(rbase)
        return a if a and a == b else None
    return wait_until(same, timeout=30, interval=0.5, what="the receiver to hold sidewatch's samples")


def test_remote_write_to_prometheus_survives_outage_and_restart(tmp_path, procs, target):
    counter = Counter(target)
    rport = free_port()
    rbase = f"http://127.0.0.1:{rport}"
    receiver = start_receiver(tmp_path, procs, rport, "receiver1")
    config = sw_config(target, rport)
    sw = Sidewatch(tmp_path, config)
    procs.append(sw)
    sw.wait_ready()

    # 1. Samples arrive; both answer promtool identically.
    wait_until(lambda: len(raw_samples(rbase)) >= 8, timeout=30, what="samples at the receiver")
    got = frozen_and_equal(sw, rbase, counter)
    values = [v for _, v in got]
    assert values == [float(i) for i in range(int(values[0]), int(values[0]) + len(values))], values
    start, end = got[0][0] - 1, got[-1][0] + 1
    out_sw, out_recv = promtool_range(sw.url, start, end), promtool_range(rbase, start, end)
    assert out_sw.count("@[") >= len(got), out_sw
    assert out_sw == out_recv
    m = requests.get(sw.url + "/metrics", timeout=5).text
    assert 'prometheus_remote_storage_samples_total{remote_name="receiver"' in m

    # 2. The receiver goes away; sidewatch keeps scraping, is restarted while
    # the receiver is down, scrapes more; the receiver comes back on the same
    # storage: every sample arrives, none twice.
    with counter.lock:
        counter.serving = True
    receiver.stop()
    time.sleep(4)
    assert sw.stop() == 0
    sw = Sidewatch(tmp_path, config, storage=sw.storage, name="sidewatch2")
    procs.append(sw)
    sw.wait_ready()
    time.sleep(4)
    before = counter.n
    assert before >= len(values) + 8
    receiver = start_receiver(tmp_path, procs, rport, "receiver2")
    got = frozen_and_equal(sw, rbase, counter)
    values = [v for _, v in got]
    # Every value from the first to the last scrape, once: nothing lost,
    # nothing duplicated, in order.
    assert values == [float(i) for i in range(1, counter.n + 1)], values
    ts = [t for t, _ in got]
    assert ts == sorted(set(ts))
    m = requests.get(sw.url + "/metrics", timeout=5).text
    assert 'prometheus_remote_storage_samples_failed_total{remote_name="receiver"' in m
    for line in m.splitlines():
        if line.startswith("prometheus_remote_storage_samples_failed_total{"):
            assert line.endswith(" 0"), line


def test_remote_write_to_prometheus_survives_sigkill(tmp_path, procs, target):
    """kill -9 at random moments while sending: a request may have reached
    the receiver without its answer reaching sidewatch, or been answered
    after the last cursor save. With several samples of the series per
    request (a scrape every 100 ms, a request every 500 ms), sending such a request
    again mixed with newer samples makes a Prometheus receiver refuse the
    whole request (out of order) and the newer samples were lost. Every
    value must arrive once, in order."""
    counter = Counter(target)
    rport = free_port()
    rbase = f"http://127.0.0.1:{rport}"
    start_receiver(tmp_path, procs, rport, "receiver")
    config = (sw_config(target, rport).replace("batch_send_deadline: 200ms", "batch_send_deadline: 500ms")
              .replace("scrape_interval: 500ms", "scrape_interval: 100ms")
              .replace("scrape_timeout: 400ms", "scrape_timeout: 90ms"))
    assert "scrape_interval: 100ms" in config and "batch_send_deadline: 500ms" in config
    sw = Sidewatch(tmp_path, config)
    procs.append(sw)
    sw.wait_ready()
    rnd = random.Random(9)
    for i in range(5):
        time.sleep(1.5 + rnd.random() * 2)
        sw.send_signal(signal.SIGKILL)
        sw.p.wait(10)
        sw = Sidewatch(tmp_path, config, storage=sw.storage, name=f"sidewatch-{i + 2}")
        procs.append(sw)
        sw.wait_ready()
    time.sleep(3)
    got = frozen_and_equal(sw, rbase, counter)
    values = [v for _, v in got]
    assert values == [float(i) for i in range(1, counter.n + 1)], values
    m = requests.get(sw.url + "/metrics", timeout=5).text
    for line in m.splitlines():
        if line.startswith("prometheus_remote_storage_samples_failed_total{"):
            assert line.endswith(" 0"), line


def test_sidewatch_to_sidewatch(tmp_path, procs, target):
    """One sidewatch forwards to another that receives
    (--web.enable-remote-write-receiver): the receiver holds the sender's
    samples, external labels added."""
    counter = Counter(target)
    recv = Sidewatch(tmp_path, None, extra_args=["--web.enable-remote-write-receiver"], name="recv")
    procs.append(recv)
    recv.wait_ready()
    sw = Sidewatch(tmp_path, f"""
global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
  external_labels: {{sidecar: host-a}}
scrape_configs:
  - job_name: t
    static_configs:
      - targets: ['{target.addr}']
remote_write:
  - url: {recv.url}/api/v1/write
    queue_config: {{batch_send_deadline: 200ms}}
""", name="sender")
    procs.append(sw)
    sw.wait_ready()
    wait_until(lambda: len(raw_samples(recv.url, 'c_total{sidecar="host-a"}[1h]')) >= 5, timeout=30,
               what="samples at the receiving sidewatch")
    with counter.lock:
        counter.serving = False
    time.sleep(1.5)

    def same():
        a = raw_samples(sw.url)
        b = raw_samples(recv.url, 'c_total{sidecar="host-a"}[1h]')
        return a if a and a == b else None
    got = wait_until(same, timeout=30, interval=0.5, what="the receiving sidewatch to hold the samples")
    assert [v for _, v in got] == [float(i) for i in range(1, len(got) + 1)]


def test_hanging_receiver_does_not_block_scraping(tmp_path, procs, target):
    """A receiver that accepts connections and never answers: each request is
    cut off by remote_timeout and retried, and meanwhile scraping and
    queries go on at their pace; when a real receiver takes over the port,
    everything scraped during the hang arrives."""
    counter = Counter(target)
    rport = free_port()
    hang = socket.socket()
    hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hang.bind(("127.0.0.1", rport))
    hang.listen(64)
    held = []

    def accept_and_hold():
        while True:
            try:
                c, _ = hang.accept()
            except OSError:
                return
            held.append(c)  # never read, never answered
    threading.Thread(target=accept_and_hold, daemon=True).start()

    cfg = sw_config(target, rport).replace("remote_timeout: 2s", "remote_timeout: 1s")
    sw = Sidewatch(tmp_path, cfg)
    procs.append(sw)
    sw.wait_ready()
    t0 = time.time()
    time.sleep(6)
    # Scraping went on every 500 ms while every send hung.
    n = raw_samples(sw.url, "c_total[5s]")
    assert len(n) >= 8, n
    m = requests.get(sw.url + "/metrics", timeout=5).text
    retried = [float(line.rsplit(" ", 1)[1]) for line in m.splitlines()
               if line.startswith("prometheus_remote_storage_samples_retried_total{")]
    assert retried and retried[0] > 0, [line for line in m.splitlines() if "remote_storage" in line][:20]
    assert len(held) >= 2, "every attempt opened a connection that was cut by remote_timeout"
    # A real receiver on the same port: the backlog arrives, once each.
    hang.close()
    for c in held:
        c.close()
    start_receiver(tmp_path, procs, rport, "late-receiver")
    got = frozen_and_equal(sw, f"http://127.0.0.1:{rport}", counter)
    values = [v for _, v in got]
    assert values == [float(i) for i in range(1, len(values) + 1)], values[:20]
    assert got[0][0] <= t0 + 2, "the samples from the hang arrived too"
