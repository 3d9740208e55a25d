"""Regenerate the R ``surveillance`` fixtures the detector tests compare against.

    python -m bench.oracle.surveillance_fixtures [--seed N] [--out PATH]

Makes random weekly, monthly and daily count series (levels from 0.2 to 60 a period, seasonality,
trends, over-dispersion, planted outbreaks), pairs each with method options (every option
combination the detectors support that R also has), runs ``surveillance_fixtures.R`` on them with
``Rscript`` and writes inputs and R's answers to ``tests/engine/alerts/data/surveillance_oracle.json.gz``.
CI reads that file and needs no R; rerun this when R or the package changes (it takes a few
minutes, most of it in ``farringtonFlexible``).

Needs R with the ``surveillance`` and ``jsonlite`` packages (Debian: ``apt-get install
r-cran-surveillance``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_OUT = REPO / "tests" / "engine" / "alerts" / "data" / "surveillance_oracle.json.gz"


def make_series(rng: np.random.Generator, n: int, freq: int, *, level: float, season: float,
                trend: float, size: float | None, outbreaks: int, outbreak_from: int = 0):
    """(counts, true in-control means) of one series."""
    t = np.arange(1, n + 1)
    phase = rng.uniform(0, 2 * math.pi)
    log_mu = math.log(level) + season * np.sin(2 * math.pi * t / freq + phase) + trend * (t - n / 2) / n
    mu = np.exp(log_mu)
    if size is None:
        y = rng.poisson(mu)
    else:
        y = rng.negative_binomial(size, size / (size + mu))
    for _ in range(outbreaks):
        at = int(rng.integers(max(outbreak_from, 0), n))
        length = int(rng.integers(1, 5))
        strength = rng.uniform(2.0, 8.0)
        for k in range(at, min(n, at + length)):
            y[k] += rng.poisson(strength * max(mu[k], 0.5))
    return [int(v) for v in y], [float(v) for v in mu]


def build_jobs(rng: np.random.Generator):
    series: list[list[int]] = []
    means: list[list[float]] = []
    jobs: list[dict] = []

    def add_series(n, freq, **kw):
        y, mu = make_series(rng, n, freq, **kw)
        series.append(y)
        means.append(mu)
        return len(series) - 1

    def job(method, s, freq, first, control, mu0=None):
        jobs.append({"id": len(jobs), "method": method, "series": s, "freq": freq, "first": first,
                     "control": control, "mu0": mu0})

    levels = [0.2, 0.7, 2.0, 6.0, 20.0, 60.0]
    # EARS: daily-like series, every method x baseline x alpha x minSigma
    for i in range(18):
        n = int(rng.integers(40, 160))
        s = add_series(n, 7, level=levels[i % len(levels)], season=rng.uniform(0, 0.6), trend=rng.uniform(-1, 1),
                       size=None if i % 3 else 2.0, outbreaks=int(rng.integers(0, 4)))
        for method in ("C1", "C2", "C3"):
            baseline = [3, 7, 10][(i + len(method)) % 3]
            first = baseline + {"C1": 1, "C2": 3, "C3": 5}[method] + int(rng.integers(0, 5))
            control = {"method": method, "baseline": baseline, "minSigma": [0.0, 0.5, 1.0][i % 3]}
            if i % 4:
                control["alpha"] = [0.001, 0.01, 0.05][i % 3]
            job("ears", s, 7, first, control)
    # GLR and CUSUM: weekly series, in-control mean given or fitted (S = 1, 2; trend or not)
    for i in range(16):
        n = int(rng.integers(150, 320))
        s = add_series(n, 52, level=levels[i % len(levels)] + 0.5, season=rng.uniform(0, 0.8),
                       trend=rng.uniform(-0.5, 0.5), size=None, outbreaks=int(rng.integers(0, 4)),
                       outbreak_from=104)
        first = int(rng.integers(60, 120))
        for ret in ("value", "cases"):
            c = [1.0, 3.0, 5.0][i % 3]
            if i % 2:
                job("glr", s, 52, first, {"c": c, "ret": ret}, mu0=s)
                job("cusum", s, 52, first, {"c": c, "ret": ret, "kappa": [math.log(1.5), math.log(2), math.log(3)][i % 3]},
                    mu0=s)
            else:
                job("glr", s, 52, first, {"c": c, "ret": ret, "S": 1 + i % 4 // 2, "trend": bool(i % 8 // 4)})
                job("cusum", s, 52, first, {"c": c, "ret": ret, "kappa": math.log(2), "S": 1, "trend": bool(i % 8 // 4)})
    # Bayes: weekly series, b = 0..2 years back, w, actY, alpha
    for i in range(14):
        n = int(rng.integers(130, 220))
        s = add_series(n, 52, level=levels[i % len(levels)], season=rng.uniform(0, 0.8), trend=0.0,
                       size=None if i % 2 else 3.0, outbreaks=int(rng.integers(0, 4)))
        b = i % 3
        w = [2, 6, 4][i % 3]
        act_y = bool(b == 0 or i % 2)
        first = b * 52 + w + 1 + int(rng.integers(0, 10))
        job("bayes", s, 52, first, {"b": b, "w": w, "actY": act_y, "alpha": [0.05, 0.01, 0.001][i % 3]})
    # Farrington flexible: weekly (5-6 years) and monthly series, Noufaily and original options
    variants = [
        dict(noPeriods=10, weightsThreshold=2.58, pastWeeksNotIncluded=26, pThresholdTrend=1.0,
             thresholdMethod="nbPlugin", powertrans="2/3"),
        dict(noPeriods=10, weightsThreshold=2.58, pastWeeksNotIncluded=26, pThresholdTrend=1.0,
             thresholdMethod="muan", powertrans="2/3"),
        dict(noPeriods=1, weightsThreshold=1.0, pastWeeksNotIncluded=3, pThresholdTrend=0.05,
             thresholdMethod="delta", powertrans="2/3"),
        dict(noPeriods=1, weightsThreshold=1.0, pastWeeksNotIncluded=3, pThresholdTrend=0.05,
             thresholdMethod="delta", powertrans="1/2"),
        dict(noPeriods=5, weightsThreshold=2.58, pastWeeksNotIncluded=10, pThresholdTrend=0.05,
             thresholdMethod="delta", powertrans="none"),
    ]
    for i in range(20):
        v = dict(variants[i % len(variants)])
        b = [3, 4, 5][i % 3]
        w = 3 if i % 4 else 2
        n = b * 52 + w + 1 + 30 + int(rng.integers(0, 20))
        s = add_series(n, 52, level=levels[(i // 2) % len(levels)] + 0.3, season=rng.uniform(0, 0.9),
                       trend=rng.uniform(-1.0, 1.5), size=None if i % 2 else 4.0, outbreaks=int(rng.integers(1, 5)),
                       outbreak_from=n - 60)
        control = dict(b=b, w=w, reweight=bool(i % 7 != 3), alpha=[0.05, 0.01][i % 2], trend=bool(i % 9 != 4),
                       limit54=[[5, 4], [0, 4], [3, 2]][i % 3], **v)
        job("farrington", s, 52, n - 29, control)
    for i in range(4):
        b, w = 3 + i % 2, 1
        n = b * 12 + w + 1 + 24
        s = add_series(n, 12, level=[3.0, 15.0][i % 2], season=0.5, trend=0.3, size=5.0, outbreaks=2,
                       outbreak_from=n - 24)
        control = dict(b=b, w=w, reweight=True, alpha=0.05, trend=True, limit54=[5, 4],
                       noPeriods=[1, 10][i % 2], weightsThreshold=2.58, pastWeeksNotIncluded=[1, 3][i % 2],
                       pThresholdTrend=[0.05, 1.0][i % 2], thresholdMethod=["delta", "nbPlugin"][i % 2],
                       powertrans="2/3")
        job("farrington", s, 12, n - 23, control)
    return series, means, jobs


def run_r(series, means, jobs) -> dict:
    payload = []
    for j in jobs:
        item = {k: v for k, v in j.items() if k not in ("series", "mu0")}
        item["y"] = series[j["series"]]
        if j["mu0"] is not None:
            item["mu0"] = means[j["mu0"]]
        payload.append(item)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "jobs.json"
        dst = Path(tmp) / "answers.json"
        src.write_text(json.dumps(payload))
        subprocess.run(["Rscript", str(HERE / "surveillance_fixtures.R"), str(src), str(dst)], check=True)
        return json.loads(dst.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    series, means, jobs = build_jobs(rng)
    answers = run_r(series, means, jobs)
    by_id = {a["id"]: a for a in answers["answers"]}
    failed = 0
    for j in jobs:
        a = by_id[j["id"]]
        a.pop("id", None)
        a.pop("seconds", None)
        j["answer"] = a
        failed += "error" in a
    fixture = {"meta": {**answers["meta"], "seed": args.seed, "generator": "bench/oracle/surveillance_fixtures.py"},
               "series": series, "means": means, "jobs": jobs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(args.out, "wb", mtime=0) as fh:
        fh.write(json.dumps(fixture, separators=(",", ":")).encode())
    print(f"{len(jobs)} jobs ({failed} raised an error in R) over {len(series)} series -> {args.out} "
          f"({args.out.stat().st_size:,} bytes); {answers['meta']['r_version']}, "
          f"surveillance {answers['meta']['surveillance_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
