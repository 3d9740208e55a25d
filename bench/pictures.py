"""Pictures of the intake and dispatch benchmarks, drawn when their modules finish.

- ``.benchmarks/intake/intake.png`` (``bench/test_intake.py``): the latency of every durable batch of
  the sustained run in arrival order, and the per-event latency of single-event callers (p50, p99) by
  the number of concurrent callers;
- ``.benchmarks/dispatch/rebalance.png`` (``bench/test_dispatch.py``): per backlog size, the largest
  worker load after online dispatch, after rebalancing and the exact optimum (MILP), and the share of
  events served outside their own grid.
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


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
