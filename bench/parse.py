"""Writes the same 10,000 series as a text 0.0.4 body, an OpenMetrics body
and a protobuf body (tests/integration/promproto.py), and runs
parse_bench on each: ns per sample for the text formats and the protobuf
format, and the cost of the same histograms as native histograms (one
sample each) instead of classic series.

Series: 80 counter families and 60 gauge families of 50 label sets each
(7,000 series) and 25 histogram families of 10 label sets (250 histograms:
10 buckets + +Inf + _count + _sum each, 3,250 series; or, read as native
histograms, 250 samples of 20 buckets each): 10,250 series in all. Label
sets: job, instance, route, method, code (realistic lengths).
"""
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import promproto  # noqa: E402

BUILD = os.environ.get("BUILD", "build/release")
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]


def fmt(v):
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def main():
    rnd = random.Random(42)
    fams = []
    text, om = [], []
    for f in range(165):
        kind = "counter" if f < 80 else "gauge" if f < 140 else "histogram"
        name = f"app_metric_{f}" + ("_total" if kind == "counter" else "_seconds" if kind == "histogram" else "")
        base = f"app_metric_{f}" + ("_seconds" if kind == "histogram" else "")
        fam = {"name": name, "help": f"Metric {f}.",
               "type": kind.upper(), "metrics": []}
        text.append(f"# HELP {fam['name']} Metric {f}.\n# TYPE {fam['name']} {kind}\n")
        om.append(f"# HELP {base if kind == 'counter' else name} Metric {f}.\n"
                  f"# TYPE {base if kind == 'counter' else name} {kind}\n")
        for i in range(50 if kind != "histogram" else 10):
            labels = {"instance": f"10.0.{i // 10}.{i % 10}:8080", "job": "api",
                      "method": ["GET", "POST"][i % 2], "route": f"/api/v1/items/{i % 7}",
                      "code": ["200", "404", "500"][i % 3]}
            ls = ",".join(f'{k}="{v}"' for k, v in labels.items())
            if kind == "histogram":
                nat = [rnd.randint(0, 40) for _ in range(20)]
                cum, counts = 0, []
                for k in range(len(BOUNDS)):
                    cum += nat[2 * k] + (nat[2 * k + 1] if k < len(BOUNDS) - 1 else 0)
                    counts.append(cum)
                total = sum(nat)
                s = round(rnd.uniform(0, 100), 3)
                fam["metrics"].append({"labels": labels, "histogram": {
                    "count": total, "sum": s, "buckets": list(zip(BOUNDS, counts)),
                    "schema": 3, "zero_threshold": 2.938735877055719e-39, "zero_count": 0,
                    "positive": [(-40, nat)]}})
                for b, c in zip(BOUNDS, counts):
                    text.append(f'{name}_bucket{{{ls},le="{b}"}} {c}\n')
                    om.append(f'{name}_bucket{{{ls},le="{float(b)}"}} {c}\n')
                for body in (text, om):
                    body.append(f'{name}_bucket{{{ls},le="+Inf"}} {total}\n')
                    body.append(f"{name}_sum{{{ls}}} {s}\n{name}_count{{{ls}}} {total}\n")
            else:
                v = rnd.randint(0, 10**6) if kind == "counter" else round(rnd.uniform(-50, 50), 2)
                fam["metrics"].append({"labels": labels, kind: float(v)})
                n = name if kind != "counter" else name
                text.append(f"{n}{{{ls}}} {fmt(v)}\n")
                om.append(f"{n}{{{ls}}} {fmt(v)}\n")
        fams.append(fam)
    om.append("# EOF\n")
    d = os.environ.get("PARSE_KEEP") or tempfile.mkdtemp(prefix="sidewatch-parse-")
    paths = {}
    for k, body in (("text", "".join(text).encode()), ("openmetrics", "".join(om).encode()),
                    ("protobuf", promproto.encode(fams))):
        paths[k] = os.path.join(d, k)
        with open(paths[k], "wb") as f:
            f.write(body)
    paths["protobuf-native"] = paths["protobuf"]
    for k in ("text", "openmetrics", "protobuf", "protobuf-native"):
        subprocess.run([os.path.join(BUILD, "bench", "parse_bench"), k, paths[k]], check=True)
    if not os.environ.get("PARSE_KEEP"):
        for k in ("text", "openmetrics", "protobuf"):
            os.unlink(paths[k])
        os.rmdir(d)


if __name__ == "__main__":
    main()
