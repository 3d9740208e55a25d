"""Run the point-location benchmarks and print the engine's ratio against every peer.

One command from the repository root::

    python -m bench.report                 # quick sizes (1e5, 1e6 points): about two minutes
    python -m bench.report --full          # 1e5, 1e6 and 1e7 points
    python -m bench.report --json FILE     # only print (and draw) an earlier run's results

It runs ``pytest bench/test_locate.py --benchmark-only`` (pytest-benchmark JSON to ``--out``), then
prints points per second for every method, size and order, the ratios of the engine (1 and 2
threads) to each peer measured in the same run, and the issue's goals; and it draws points/s against
N per method into ``locate.png`` next to the JSON. Absolute rates on a shared machine are noisy: the
ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".benchmarks" / "locate"
FULL_SIZES = "100000,1000000,10000000"
PEERS = ("shapely_strtree", "geopandas_sjoin", "h3_latlng_to_cell", "postgis_st_covers")
#: (order, threads, peer, goal): the issue's goals.
GOALS = (("random", 1, "shapely_strtree", 30.0), ("sorted", 2, "shapely_strtree", 100.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help=f"sizes {FULL_SIZES} (else $CITYGRID_BENCH_POINTS)")
    parser.add_argument("--json", type=Path, help="print this pytest-benchmark JSON instead of running")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where results go (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.json is None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "locate.json"
        env = dict(os.environ)
        if args.full:
            env["CITYGRID_BENCH_POINTS"] = FULL_SIZES
        command = [sys.executable, "-m", "pytest", str(REPO / "bench" / "test_locate.py"), "--benchmark-only",
                   f"--benchmark-json={path}", "-q", "-p", "no:cacheprovider"]
        print("running:", " ".join(command), flush=True)
        done = subprocess.run(command, cwd=REPO, env=env, check=False)
        if done.returncode != 0 or not path.exists():
            print("the benchmark run failed", file=sys.stderr)
            return done.returncode or 1
    else:
        path = args.json
    rates = load_rates(path)
    print(ratio_table(rates))
    picture = path.with_suffix(".png")
    draw_curves(rates, picture)
    print(f"\ncurve: {picture}")
    return 0


def load_rates(path: Path) -> dict[tuple[str, int, str, int], float]:
    """``{(method, threads, order, n): points per second}`` from a pytest-benchmark JSON file."""
    data = json.loads(Path(path).read_text())
    rates = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "method" in info:
            rates[(info["method"], int(info["threads"]), info["order"], int(info["n"]))] = float(info["points_per_s"])
    return rates


def ratio_table(rates: dict) -> str:
    """Points/s per method and the engine's ratios to each peer, by order and size; then the goals."""
    sizes = sorted({n for (m, t, o, n) in rates if m == "engine"})
    lines = []
    header = f"{'order':<7}{'points':>11}{'engine 1T':>12}{'engine 2T':>12}" + "".join(f"{p:>20}" for p in PEERS)
    lines += ["points per second (millions); peers as they run by default (PostGIS may add parallel workers)",
              header, "-" * len(header)]
    for order in ("random", "sorted"):
        for n in sizes:
            row = f"{order:<7}{n:>11,}"
            for threads in (1, 2):
                row += f"{_m(rates.get(('engine', threads, order, n))):>12}"
            for peer in PEERS:
                row += f"{_m(_peer(rates, peer, order, n)):>20}"
            lines.append(row)
    ratio_header = f"{'order':<7}{'points':>11}{'threads':>12}" + "".join(f"{p:>20}" for p in PEERS)
    lines += ["", "engine / peer (same run)", ratio_header, "-" * len(ratio_header)]
    for order in ("random", "sorted"):
        for n in sizes:
            for threads in (1, 2):
                engine = rates.get(("engine", threads, order, n))
                row = f"{order:<7}{n:>11,}{threads:>12}"
                for peer in PEERS:
                    other = _peer(rates, peer, order, n)
                    row += f"{_ratio(engine, other):>20}"
                lines.append(row)
    lines += ["", "goals"]
    for order, threads, peer, goal in GOALS:
        for n in sizes:
            ratio = None
            engine, other = rates.get(("engine", threads, order, n)), _peer(rates, peer, order, n)
            if engine and other:
                ratio = engine / other
            verdict = "n/a" if ratio is None else ("met" if ratio >= goal else "NOT met")
            lines.append(f"  {order} points, {threads} thread(s), engine >= {goal:g}x {peer} at {n:,}: "
                         f"{'-' if ratio is None else f'{ratio:.0f}x'} ({verdict})")
    return "\n".join(lines)


def draw_curves(rates: dict, path: Path) -> None:
    """Points/s against N (log-log), one line per method and thread count; dashed: sorted points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = defaultdict(list)
    for (method, threads, order, n), rate in rates.items():
        label = f"{method} ({threads} thread{'s' if threads > 1 else ''})" if method == "engine" else method
        series[(label, order)].append((n, rate))
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {}
    for (label, order), points in sorted(series.items()):
        points.sort()
        colour = colours.setdefault(label, f"C{len(colours)}")
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colour,
                linestyle="-" if order == "random" else "--", label=f"{label}, {order}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("points per call (N)")
    ax.set_ylabel("points per second")
    ax.set_title("point-in-grid throughput (solid: random order, dashed: sorted)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _peer(rates: dict, peer: str, order: str, n: int) -> float | None:
    """A peer's rate at size ``n`` (it may have been timed on fewer points: CITYGRID_BENCH_PEER_MAX)."""
    found = [rate for (m, t, o, size), rate in rates.items() if m == peer and o == order and size <= n]
    sizes = [size for (m, t, o, size) in rates if m == peer and o == order and size <= n]
    return found[sizes.index(max(sizes))] if found else None


def _m(rate: float | None) -> str:
    return "-" if rate is None else f"{rate / 1e6:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.0f}x"


if __name__ == "__main__":
    sys.exit(main())
