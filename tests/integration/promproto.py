"""A small encoder of the Prometheus protobuf exposition format
(io.prometheus.client.MetricFamily, length-delimited), written from the
protobuf wire format so that the tests do not depend on sidewatch's own
encoder or on a protobuf library.

Families are plain dicts:
  {"name": "h", "help": "...", "type": "HISTOGRAM", "metrics": [
      {"labels": {"a": "b"}, "timestamp_ms": 123,
       "counter": 5.0 | "gauge": 1.0 | "untyped": 1.0,
       "summary": {"count": 3, "sum": 1.5, "quantiles": [(0.5, 0.2)]},
       "histogram": {"count": 10, "sum": 3.0, "buckets": [(0.1, 2), (1.0, 7)],
                     "schema": 0, "zero_threshold": 1e-3, "zero_count": 1,
                     "positive": [(offset, [absolute counts...]), ...],
                     "negative": [...], "float": False, "packed": True}}]}
Native histogram buckets are given as absolute counts per span; the
encoder writes them as the deltas the format wants (or as float counts).
"""
import struct

TYPES = {"COUNTER": 0, "GAUGE": 1, "SUMMARY": 2, "UNTYPED": 3, "HISTOGRAM": 4,
         "GAUGE_HISTOGRAM": 5}
CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                "encoding=delimited")


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_sint(field, n):
    return key(field, 0) + varint(zigzag(n))


def f_double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def label_pair(name, value):
    return f_bytes(1, name) + f_bytes(2, value)


def spans_and_counts(spans, span_field, delta_field, count_field, is_float, packed):
    out = b""
    prev = 0
    deltas, counts = [], []
    for span in spans:
        offset, cs = span[0], span[1]
        length = span[2] if len(span) > 2 else len(cs)  # a wrong length, for bad-input tests
        out += f_bytes(span_field, f_sint(1, offset) + f_varint(2, length))
        for c in cs:
            if is_float:
                counts.append(float(c))
            else:
                deltas.append(int(c) - prev)
                prev = int(c)
    if packed:
        if deltas:
            out += f_bytes(delta_field, b"".join(varint(zigzag(d)) for d in deltas))
        if counts:
            out += f_bytes(count_field, b"".join(struct.pack("<d", c) for c in counts))
    else:
        out += b"".join(f_sint(delta_field, d) for d in deltas)
        out += b"".join(f_double(count_field, c) for c in counts)
    return out


def histogram(h):
    is_float = h.get("float", False)
    packed = h.get("packed", True)
    out = b""
    if is_float:
        out += f_double(4, float(h["count"]))
    else:
        out += f_varint(1, int(h["count"]))
    out += f_double(2, float(h["sum"]))
    for ub, cum in h.get("buckets", []):
        out += f_bytes(3, (f_double(4, float(cum)) if is_float else f_varint(1, int(cum))) +
                       f_double(2, ub))
    if "schema" in h:
        out += f_sint(5, h["schema"])
        out += f_double(6, h.get("zero_threshold", 0.0))
        if is_float:
            out += f_double(8, float(h.get("zero_count", 0)))
        else:
            out += f_varint(7, int(h.get("zero_count", 0)))
        out += spans_and_counts(h.get("negative", []), 9, 10, 11, is_float, packed)
        out += spans_and_counts(h.get("positive", []), 12, 13, 14, is_float, packed)
    return out


def metric(m):
    out = b"".join(f_bytes(1, label_pair(k, v)) for k, v in m.get("labels", {}).items())
    if "gauge" in m:
        out += f_bytes(2, f_double(1, m["gauge"]))
    if "counter" in m:
        out += f_bytes(3, f_double(1, m["counter"]))
    if "summary" in m:
        s = m["summary"]
        body = f_varint(1, s["count"]) + f_double(2, s["sum"])
        body += b"".join(f_bytes(3, f_double(1, q) + f_double(2, v)) for q, v in s["quantiles"])
        out += f_bytes(4, body)
    if "untyped" in m:
        out += f_bytes(5, f_double(1, m["untyped"]))
    if "histogram" in m:
        out += f_bytes(7, histogram(m["histogram"]))
    if "timestamp_ms" in m:
        out += key(6, 0) + varint(m["timestamp_ms"])
    return out


def family(f):
    out = f_bytes(1, f["name"])
    if f.get("help"):
        out += f_bytes(2, f["help"])
    out += f_varint(3, TYPES[f["type"]])
    out += b"".join(f_bytes(4, metric(m)) for m in f["metrics"])
    return out


def encode(families):
    """The delimited body: each MetricFamily after its varint length."""
    out = b""
    for f in families:
        body = family(f)
        out += varint(len(body)) + body
    return out
