"""The example backend of docker-compose.prod.yml.

A small FastAPI service with a Redis read-through cache, instrumented the way
sidewatch's shipped rules (rules/app.yml) and dashboards expect:

  http_requests_total{method,route,status}          counter
  http_request_duration_seconds{method,route}       classic histogram
  cache_hits_total, cache_misses_total               counters
  process_* (resident memory, CPU)                   prometheus-client's defaults

`route` is the route template (/items/{item_id}), never the raw path, so the
number of series stays bounded. Metrics are served on /metrics.

Settings (environment): REDIS_HOST, REDIS_PORT, REDIS_PASSWORD,
CACHE_TTL_SECONDS.
"""
import asyncio
import hashlib
import logging
import os
import random
import time

import redis.asyncio as redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

log = logging.getLogger("app")

REQUESTS = Counter(
    "http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency in seconds.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE_HITS = Counter("cache_hits_total", "Cache lookups answered from Redis.")
CACHE_MISSES = Counter("cache_misses_total", "Cache lookups not found in Redis (or Redis unavailable).")

CACHE_TTL = int(os.environ.get("CACHE_TTL_SECONDS", "30"))

app = FastAPI(title="sidewatch example app")
cache = redis.Redis(
    host=os.environ.get("REDIS_HOST", "localhost"),
    port=int(os.environ.get("REDIS_PORT", "6379")),
    password=os.environ.get("REDIS_PASSWORD") or None,
    socket_timeout=1.0,
    socket_connect_timeout=1.0,
)


@app.middleware("http")
async def measure(request: Request, call_next):
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        LATENCY.labels(request.method, template).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, template, str(status)).inc()


@app.get("/")
async def index():
    return {"service": "sidewatch example app", "try": ["/items/42", "/slow", "/fail"]}


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/metrics")
async def metrics():
    # As a header, not media_type: Starlette would append a second charset.
    return Response(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def compute(item_id: int) -> str:
    """The expensive work the cache saves: 20-80 ms."""
    await asyncio.sleep(random.uniform(0.02, 0.08))
    return hashlib.sha256(str(item_id).encode()).hexdigest()


@app.get("/items/{item_id}")
async def item(item_id: int):
    if item_id < 0:
        raise HTTPException(status_code=404, detail="no such item")
    key = f"item:{item_id}"
    try:
        value = await cache.get(key)
    except redis.RedisError as e:
        log.warning("redis get %s: %s", key, e)
        value = None
    if value is not None:
        CACHE_HITS.inc()
        return {"id": item_id, "value": value.decode(), "cached": True}
    CACHE_MISSES.inc()
    value = await compute(item_id)
    try:
        await cache.set(key, value, ex=CACHE_TTL)
    except redis.RedisError as e:
        log.warning("redis set %s: %s", key, e)
    return {"id": item_id, "value": value, "cached": False}


@app.get("/slow")
async def slow():
    """A slow endpoint (0.2-1.2 s): shows up in the p99 latency."""
    await asyncio.sleep(random.uniform(0.2, 1.2))
    return {"slow": True}


@app.get("/fail")
async def fail():
    """Always a 500: shows up in the error ratio (HighErrorRate)."""
    raise HTTPException(status_code=500, detail="failing on purpose")
