"""Pictures of the intake and dispatch benchmarks, drawn when their modules finish.

- ``.benchmarks/intake/intake.png`` (``bench/test_intake.py``): the latency of every durable batch of
  the sustained run in arrival order, and the per-event latency of single-event callers (p50, p99) by
  the number of concurrent callers;
- ``.benchmarks/dispatch/rebalance.png`` (``bench/test_dispatch.py``): per backlog size, the largest
  worker load after online dispatch, after rebalancing and the exact optimum (MILP), and the share of
  events served outside their own grid;
- ``.benchmarks/scan/replay.png`` (``bench/test_scan_replay.py``): recall and false alerts a day,
  and precision against recall, of the space-time scans replayed day by day.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / ".benchmarks"


def drawn_after(draw, results: dict):
    """A module fixture (assign it to a name in the benchmark module) that draws ``draw(results)``
    once the module's benchmarks have run."""

    @pytest.fixture(scope="module", autouse=True)
    def picture():
        yield
        path = draw(results)
        if path is not None:
            print(f"\npicture: {path}")

    return picture


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_intake(results: dict, path: Path = OUT / "intake" / "intake.png") -> Path | None:
    """The sustained run's batch latencies and the single-event latencies; ``None`` without results."""
    sustained = results.get("sustained")
    singles = sorted((r["callers"], r) for key, r in results.items() if key.startswith("single-"))
    if sustained is None and not singles:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    if sustained is not None:
        left.plot(range(1, len(sustained["latencies_ms"]) + 1), sustained["latencies_ms"], lw=0.8)
        left.axhline(sustained["batch_p99_ms"], color="C3", ls="--", lw=0.8, label=f"p99 {sustained['batch_p99_ms']} ms")
        left.set_title(f"sustained durable intake: {sustained['events_per_s']:,} events/s "
                       f"(batches of 1,000, goal 20,000)", fontsize=9)
        left.set_xlabel("batch")
        left.set_ylabel("batch latency (ms)")
        left.legend(fontsize=8)
        left.grid(alpha=0.3)
    if singles:
        callers = [c for c, _ in singles]
        right.plot(callers, [r["p50_ms"] for _, r in singles], marker="o", label="p50")
        right.plot(callers, [r["p99_ms"] for _, r in singles], marker="o", label="p99")
        right.set_xscale("log", base=2)
        right.set_xticks(callers, [str(c) for c in callers])
        right.set_title("one event per call (group commit)", fontsize=9)
        right.set_xlabel("concurrent callers")
        right.set_ylabel("latency per event (ms)")
        right.legend(fontsize=8)
        right.grid(alpha=0.3)
    return _save(fig, plt, path)


def draw_rebalance(results: dict, path: Path = OUT / "dispatch" / "rebalance.png") -> Path | None:
    """Largest load and outside-grid share per backlog size; ``None`` without rebalance results."""
    runs = sorted((r["events"], r) for key, r in results.items() if key.startswith("rebalance-"))
    if not runs:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(runs))
    labels = [f"{n:,}" for n, _ in runs]
    width = 0.27
    for k, (name, values) in enumerate((
        ("online (= batch)", [r["online"]["max_load"] for _, r in runs]),
        ("rebalance", [r["rebalance"]["max_load"] for _, r in runs]),
        ("optimum (MILP)", [r["optimum_max_load"] for _, r in runs]),
    )):
        left.bar([i + (k - 1) * width for i in x], values, width, label=name)
    left.set_xticks(list(x), labels)
    left.set_xlabel("open events in the backlog")
    left.set_ylabel("largest worker load")
    left.set_title("rebalance vs the exact optimum (goal: within 1)", fontsize=9)
    left.set_ylim(0, 1.3 * max(max(r["online"]["max_load"], r["optimum_max_load"]) for _, r in runs))
    left.legend(fontsize=8, loc="upper left", ncol=3)
    shares = {key: [100 * r[key]["outside_share"] for _, r in runs] for key in ("online", "rebalance")}
    for k, (key, values) in enumerate(shares.items()):
        right.bar([i + (k - 0.5) * width for i in x], values, width, label=key)
    right.set_ylim(0, 1.3 * max(max(v) for v in shares.values()))
    right.set_xticks(list(x), labels)
    right.set_xlabel("open events in the backlog")
    right.set_ylabel("% served outside their own grid")
    right.set_title("events served by a neighbouring grid's worker", fontsize=9)
    right.legend(fontsize=8, loc="upper center", ncol=2)
    return _save(fig, plt, path)


def draw_scan_replay(results: dict, path: Path = OUT / "scan" / "replay.png") -> Path | None:
    """Per replayed scan setting (``bench/test_scan_replay.py``), over its p thresholds: recall of the
    labelled clusters and spikes against false alerts a day, and precision against recall of all
    anomalies; the shipped setting's shipped threshold ringed. ``None`` without results."""
    if not results:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (name, r) in enumerate(sorted(results.items())):
        rows = r["rows"]
        if not rows:
            continue
        colour = f"C{k % 10}"
        x = [row["false_per_day"] for row in rows]
        left.plot(x, [100 * row["cluster"] for row in rows], marker="o", color=colour, label=f"{name}: clusters")
        left.plot(x, [100 * row["spike"] for row in rows], marker="^", ls="--", color=colour, alpha=0.6,
                  label=f"{name}: spikes")
        recall = [100 * sum(row["found"].values()) / max(1, len(row["found"])) for row in rows]
        right.plot(recall, [100 * row["precision"] for row in rows], marker="o", color=colour, label=name)
        for row, xr, yr in zip(rows, recall, [100 * row["precision"] for row in rows]):
            right.annotate(f"{row['threshold']:g}", (xr, yr), fontsize=6, xytext=(2, 2), textcoords="offset points")
        if name == "stp":
            for row in rows:
                if row["threshold"] == 0.005:
                    left.scatter([row["false_per_day"]], [100 * row["cluster"]], s=160, facecolors="none",
                                 edgecolors="k", zorder=5)
    left.axvline(1.0, color="k", lw=0.6, ls=":")
    left.axhline(80, color="k", lw=0.6, ls=":")
    left.set_xscale("symlog", linthresh=0.1)
    left.set_xlabel("false alerts a day (deduplicated as the service stores them)")
    left.set_ylabel("% of labelled anomalies found")
    left.set_title("space-time scans replayed day by day over the demo year (points: p thresholds)", fontsize=9)
    left.legend(fontsize=6, ncol=2)
    left.grid(alpha=0.3)
    right.set_xlabel("% of the 40 labelled anomalies found (recall)")
    right.set_ylabel("% of alerts covering a labelled anomaly (precision)")
    right.set_title("precision / recall per method (labels: p threshold)", fontsize=9)
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
