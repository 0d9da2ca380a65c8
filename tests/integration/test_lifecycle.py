"""Reload (SIGHUP and POST /-/reload) with good and broken configs, clean
shutdown on SIGTERM, and no loss of committed samples on SIGKILL."""
import signal
import time

import requests

from conftest import TEXT, Sidewatch, wait_until


def cfg(addr, job="app", interval="1s", path="/m"):
    return f"""
global:
  scrape_interval: {interval}
scrape_configs:
  - job_name: {job}
    metrics_path: {path}
    static_configs:
      - targets: ['{addr}']
"""


def test_reload_good_and_broken(start_sidewatch, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"value 1\n")
    sw = start_sidewatch(cfg(target.addr, job="first"))
    wait_until(lambda: sw.federate_samples('value{job="first"}'), what="first job scraped")

    # A good config via POST /-/reload switches jobs.
    with open(sw.config_path, "w") as f:
        f.write(cfg(target.addr, job="second"))
    r = requests.post(sw.url + "/-/reload", timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: sw.federate_samples('value{job="second"}'), what="second job scraped")
    # The removed job's series went stale, so federation no longer shows it.
    wait_until(lambda: not sw.federate_samples('value{job="first"}'), what="first job stale")

    # A broken config is refused with file:line:column; the old one stays.
    with open(sw.config_path, "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: x\n    scrape_timeout: banana\n")
    r = requests.post(sw.url + "/-/reload", timeout=10)
    assert r.status_code == 500
    assert f"{sw.config_path}:5:" in r.text and "banana" in r.text, r.text
    assert "sidewatch_config_last_reload_successful 0" in sw.metrics().text
    t0 = list(sw.federate_samples('value{job="second"}').values())[0][1]
    wait_until(lambda: list(sw.federate_samples('value{job="second"}').values())[0][1] > t0,
               what="old config still scraping")

    # SIGHUP with a broken config: logged, still running the old config.
    with open(sw.config_path, "w") as f:
        f.write("scrape_configs:\n  - job_name: [oops\n")
    sw.send_signal(signal.SIGHUP)
    wait_until(lambda: sw.output().count("Error reloading config") >= 2, what="SIGHUP reload error logged")
    assert sw.alive()
    t1 = list(sw.federate_samples('value{job="second"}').values())[0][1]
    wait_until(lambda: list(sw.federate_samples('value{job="second"}').values())[0][1] > t1,
               what="still scraping after bad SIGHUP")

    # SIGHUP with a good config works too.
    with open(sw.config_path, "w") as f:
        f.write(cfg(target.addr, job="third"))
    sw.send_signal(signal.SIGHUP)
    wait_until(lambda: sw.federate_samples('value{job="third"}'), what="third job after SIGHUP")
    assert "sidewatch_config_last_reload_successful 1" in sw.metrics().text


def test_lifecycle_endpoints_need_flag(start_sidewatch):
    sw = start_sidewatch(lifecycle=False)
    r = requests.post(sw.url + "/-/reload", timeout=5)
    assert r.status_code == 403 and "Lifecycle API is not enabled" in r.text
    r = requests.post(sw.url + "/-/quit", timeout=5)
    assert r.status_code == 403
    assert requests.get(sw.url + "/-/healthy", timeout=5).status_code == 200
    assert requests.get(sw.url + "/-/reload", timeout=5).status_code == 405
    assert requests.get(sw.url + "/nope", timeout=5).status_code == 404
    assert sw.alive()


def test_quit_endpoint(start_sidewatch):
    sw = start_sidewatch()
    assert requests.post(sw.url + "/-/quit", timeout=5).status_code == 200
    wait_until(lambda: not sw.alive(), what="exit after /-/quit")
    assert sw.p.returncode == 0


def test_sigterm_is_clean_and_sigkill_loses_nothing(tmp_path, procs, target):
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"value 7\n")
    storage = str(tmp_path / "store")
    sw = Sidewatch(tmp_path, cfg(target.addr), storage=storage)
    procs.append(sw)
    sw.wait_ready()
    wait_until(lambda: sw.federate_samples('value{job="app"}'), what="scraped")
    # SIGKILL: nothing committed may be lost.
    before = sw.federate_samples('{job="app"}')
    sw.stop(signal.SIGKILL)
    # Restart with no targets for that job: the last committed samples (and
    # their timestamps) must be there.
    sw2 = Sidewatch(tmp_path, "global:\n  scrape_interval: 1h\n", name="restarted", storage=storage)
    procs.append(sw2)
    sw2.wait_ready()
    after = sw2.federate_samples('{job="app"}')
    for series, (v, ts) in before.items():
        assert series in after, (series, after)
        assert after[series][1] >= ts
    assert after['value{instance="%s",job="app"}' % target.addr][0] == 7
    # SIGTERM: exits 0 and says goodbye.
    assert sw2.stop(signal.SIGTERM) == 0
    assert "See you next time!" in sw2.output()


def test_storage_survives_many_kills(tmp_path, procs, target):
    """Kill -9 repeatedly during scraping; each restart opens without repair
    and every sample seen via /federate before a kill is still there."""
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b"".join(b"m%d %d\n" % (i, i) for i in range(200)))
    storage = str(tmp_path / "store")
    seen = {}
    for round_ in range(4):
        sw = Sidewatch(tmp_path, cfg(target.addr, interval="1s"), name=f"round{round_}", storage=storage)
        procs.append(sw)
        sw.wait_ready()
        wait_until(lambda: len(sw.federate_samples('{job="app",__name__=~"m.*"}')) == 200, what="scraped")
        for series, (v, ts) in sw.federate_samples('{job="app",__name__=~"m.*"}').items():
            assert ts >= seen.get(series, 0)
            seen[series] = ts
        time.sleep(0.3 * round_)
        sw.stop(signal.SIGKILL)
    assert len(seen) == 200


def test_reload_with_new_metric_relabeling(start_sidewatch, target):
    """A reload that changes metric_relabel_configs applies to the very next
    scrape, and series the new rules no longer produce go stale."""
    target.routes["/m"] = (200, {"Content-Type": TEXT}, b'a 1\nb 2\n')
    base = cfg(target.addr)
    sw = start_sidewatch(base)
    wait_until(lambda: len(sw.federate_samples('{job="app",__name__=~"a|b"}')) == 2, what="a and b")
    with open(sw.config_path, "w") as f:
        f.write(base + """    metric_relabel_configs:
      - source_labels: [__name__]
        regex: b
        action: drop
      - target_label: env
        replacement: prod
""")
    assert requests.post(sw.url + "/-/reload", timeout=10).status_code == 200
    want = [f'a{{env="prod",instance="{target.addr}",job="app"}}']
    wait_until(lambda: list(sw.federate_samples('{job="app",__name__=~"a|b"}')) == want,
               what="new rules applied, old series stale")
