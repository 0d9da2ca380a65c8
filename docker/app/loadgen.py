"""A small traffic generator for the example stack (compose profile "demo"),
so the dashboards have request rates, latencies and cache hit rates to show.

TARGET (default http://nginx:8080), RPS (default 5), FAIL_RATIO (default
0.01), SLOW_RATIO (default 0.02). Standard library only.
"""
import os
import random
import time
import urllib.error
import urllib.request

TARGET = os.environ.get("TARGET", "http://nginx:8080").rstrip("/")
RPS = float(os.environ.get("RPS", "5"))
FAIL_RATIO = float(os.environ.get("FAIL_RATIO", "0.01"))
SLOW_RATIO = float(os.environ.get("SLOW_RATIO", "0.02"))


def one():
    r = random.random()
    if r < FAIL_RATIO:
        path = "/fail"
    elif r < FAIL_RATIO + SLOW_RATIO:
        path = "/slow"
    else:
        # A skewed key space: popular items hit the cache, the tail misses.
        path = f"/items/{int(random.paretovariate(1.2)) % 500}"
    try:
        with urllib.request.urlopen(TARGET + path, timeout=5) as resp:
            resp.read()
    except (urllib.error.URLError, OSError):
        pass  # 5xx and connection errors are part of the show


def main():
    interval = 1.0 / RPS if RPS > 0 else 1.0
    while True:
        start = time.monotonic()
        one()
        time.sleep(max(0.0, interval - (time.monotonic() - start)))


if __name__ == "__main__":
    main()
