"""How soon the map page draws the demo district's 3,823 grids (issue 15: ≤ 2 s after the page
loads), in headless Chromium (Debian's chromium with SwiftShader, as the browser test drives it),
beside a peer measured in the same run: the page as it was before the grids came as vector tiles
(:data:`PEER`'s app.js, which gives MapLibre the layer's GeoJSON to cut into tiles itself), served
by the same server from the same vendored MapLibre.

Each round opens a fresh browser (no HTTP cache) on one page, logs in and waits until the page says
all its grids are drawn; the two pages alternate, so load on the shared machine falls on both.
"Drawn" is each page's own measure: the first frame after the grids are coloured at which MapLibre's
loaded tiles hold every grid code (``querySourceFeatures``), counted from the page's start (after
its whoami answer) and from the navigation's start. Both servers' caches are warm (a first round of
each page is not counted; the server cuts the tiles when the layer version becomes active). Run::

    pytest bench/test_map_draw.py -s -p no:cacheprovider
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from served_demo import serve_demo  # noqa: E402
from test_map_page import _driver, log_in, wait_for  # noqa: E402

from citygrid.engine.demo import generate_demo  # noqa: E402

#: The revision whose page is the peer: main before the tiles (GeoJSON cut by MapLibre's worker).
PEER = "c6d5e88"
ROUNDS = 4


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    source = tmp_path_factory.mktemp("demo-source")
    generate_demo(source, seed=20261130, n_events=20_000)
    served = serve_demo(tmp_path_factory.mktemp("bench-map"), source)
    gateway = served.server.gateway
    deadline = time.monotonic() + 120
    while gateway.warmed_version != served.server.state.registry.active_version_id and time.monotonic() < deadline:
        time.sleep(0.2)
    yield served
    served.server.stop(1.0).wait(20)


@pytest.fixture(scope="module")
def peer_url(demo, tmp_path_factory):
    """The peer page under /peer/ on the same server (its app.js from :data:`PEER`)."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    folder = tmp_path_factory.mktemp("peer-page")
    try:
        for name in ("index.html", "app.js", "app.css"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{PEER}:grpc_api/web/page/{name}"],
                                  check=True, capture_output=True, text=True).stdout
            (folder / name).write_text(text.replace("/static/app.js", "/peer/app.js").replace(
                "/static/app.css", "/peer/app.css"))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the peer page needs git and revision {PEER}: {exc}")
    demo.server.gateway.app.router.routes.insert(0, Mount("/peer", StaticFiles(directory=folder, html=True)))
    return f"http://127.0.0.1:{demo.http_port}/peer/"


READY = "const c = window.citygrid; return c && c.ready && {gridsDrawn: c.gridsDrawn, timings: c.timings}"


def draw(url: str, token: str) -> dict:
    """The page's timings after logging in, and after a reload with the token kept (the page starts
    as it loads: its ``grids_drawn_since_navigation`` is the time from the page's request)."""
    driver = _driver()
    try:
        state = log_in(driver, url, token)
        assert state["gridsDrawn"] == 3823
        driver.refresh()
        again = wait_for(driver, READY, timeout=120)
        assert again["gridsDrawn"] == 3823
        return {**state["timings"], "reload": again["timings"]}
    finally:
        driver.quit()


def test_grids_drawn_beside_the_geojson_page(demo, peer_url):
    pages = {"tiles": demo.url, "geojson (peer)": peer_url}
    for url in pages.values():  # warm-up rounds, not counted
        draw(url, demo.admin_token)
    runs = {name: [] for name in pages}
    for _ in range(ROUNDS):
        for name, url in pages.items():
            runs[name].append(draw(url, demo.admin_token))
    report = {}
    for name, timings in runs.items():
        drawn = [t["grids_drawn"] for t in timings]
        since = [t["grids_drawn_since_navigation"] for t in timings]
        reload = [t["reload"]["grids_drawn_since_navigation"] for t in timings]
        report[name] = {"grids_drawn_ms": drawn, "median_ms": statistics.median(drawn),
                        "since_navigation_median_ms": statistics.median(since),
                        "reload_since_navigation_ms": reload, "reload_median_ms": statistics.median(reload),
                        "timings": timings}
    print(json.dumps(report, indent=1))
    ours, peer = report["tiles"], report["geojson (peer)"]
    for what, label in (("median_ms", "from the page's start after login"),
                        ("since_navigation_median_ms", "from navigation, token typed"),
                        ("reload_median_ms", "from navigation, reload with the token kept")):
        report[f"peer_over_tiles {what}"] = peer[what] / ours[what]
        print(f"grids drawn {label}, median of {ROUNDS}: tiles {ours[what]:.0f} ms, GeoJSON page (peer) "
              f"{peer[what]:.0f} ms: the peer takes {peer[what] / ours[what]:.2f}x as long")
    out = ROOT / "build" / "bench-map-draw.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
