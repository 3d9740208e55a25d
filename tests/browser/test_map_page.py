"""The map page as a person uses it, in headless Chromium (Debian's ``chromium`` driven through its
``chromedriver`` by Selenium; no browser is downloaded): the demo district served in-process with
its events (:mod:`served_demo`), a token typed into the login form, and then:

- all 3,823 grids drawn (the map's own rendered source features, counted by grid code);
- a click on a grid shows that grid's card (name, code, type, workers as the demo's roster says);
- an event submitted over gRPC changes that grid's count on the page within 5 s;
- a raised alert appears as a marker and in the list (when the server runs alerts);
- a street's dashboard token sees only its street's grids.

Screenshots and the page's timings are saved under ``build/browser-artefacts/`` (the folder is
printed). Marked ``browser``: run with ``pytest -m browser`` (the default run leaves it out, see
the README's note on why).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "browser-artefacts"
#: The issue's bound for a change to reach the page.
LIVE_SECONDS = 5.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_dir):
    from served_demo import serve_demo

    served = serve_demo(tmp_path_factory.mktemp("browser-data"), demo_dir)
    yield served
    assert served.server.stop(1.0).wait(20)


@pytest.fixture(scope="module")
def artefacts():
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    ARTEFACTS.mkdir(parents=True)
    print(f"browser test artefacts: {ARTEFACTS}")
    return ARTEFACTS


def _driver():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                     "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
                     "--lang=zh-CN"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def log_in(driver, url: str, token: str) -> dict:
    """Open the page, type the token into the login form, wait until the grids are drawn."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    return wait_for(driver, "const c = window.citygrid; return c.ready && {gridsDrawn: c.gridsDrawn, timings: c.timings}",
                    timeout=120)


def wait_for(driver, script: str, *args, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {script}")


@pytest.fixture(scope="module")
def admin_page(demo, artefacts):
    driver = _driver()
    try:
        state = log_in(driver, demo.url, demo.admin_token)
        (artefacts / "timings.json").write_text(json.dumps(
            {"admin": state["timings"]}, indent=2))
        yield driver, state
    finally:
        driver.quit()


def grid_codes_drawn(driver) -> set[str]:
    """The codes of the grids the map holds as features of its loaded tiles (the page's ``areas``
    vector source, MVT layer ``grid``; a grid cut by a tile edge counts once)."""
    return set(driver.execute_script(
        "return [...new Set(window.citygrid.map.querySourceFeatures('areas', {sourceLayer: 'grid'})"
        ".map(f => f.properties.code))]"))


def test_all_grids_are_drawn(demo, admin_page, artefacts):
    driver, state = admin_page
    layer = demo.server.state.registry.snapshot().layer
    assert layer.n_grids == 3823
    assert grid_codes_drawn(driver) == set(layer.codes)
    assert state["gridsDrawn"] == 3823
    driver.save_screenshot(str(artefacts / "district.png"))
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "measure")).select_by_value("week")
    wait_for(driver, "return document.getElementById('legend-title').textContent.includes('周')")
    time.sleep(1)
    driver.save_screenshot(str(artefacts / "district-week.png"))
    Select(driver.find_element("id", "measure")).select_by_value("day")


def click_grid(driver, code: str) -> None:
    """Click the page's map where the grid is (its label point, projected by the map itself)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script("const m = window.citygrid.map; const p = window.citygrid.gridFeatures.get(arguments[0]).label;"
                          "m.jumpTo({center: p, zoom: 14});", code)
    wait_for(driver, "return window.citygrid.map.loaded() && !window.citygrid.map.isMoving()")
    x, y = driver.execute_script("const m = window.citygrid.map; const p = m.project("
                                 "window.citygrid.gridFeatures.get(arguments[0]).label); return [p.x, p.y];", code)
    canvas = driver.find_element(By.ID, "map")
    size = canvas.size
    ActionChains(driver).move_to_element_with_offset(canvas, int(x - size["width"] / 2),
                                                     int(y - size["height"] / 2)).click().perform()


def test_a_click_shows_the_grids_card(demo, admin_page, artefacts):
    driver, _ = admin_page
    demo_dir = demo.server.state.config.data_dir / "demo"
    grids = pq.read_table(demo_dir / "grids.parquet", columns=["grid_code", "grid_name", "grid_type"]).to_pylist()
    workers = pq.read_table(demo_dir / "workers.parquet").to_pylist()
    staffed = {w["grid_code"] for w in workers}
    grid = next(g for g in grids[1000:] if g["grid_code"] in staffed)
    click_grid(driver, grid["grid_code"])
    wait_for(driver, "const e = document.getElementById('card-code'); return e && e.textContent === arguments[0]",
             grid["grid_code"])
    text = lambda element_id: driver.execute_script(f"return document.getElementById('{element_id}').textContent")
    assert text("card-name") == grid["grid_name"]
    assert text("card-type") == grid["grid_type"]
    names = {w.get("name") or w["worker_id"] for w in workers if w["grid_code"] == grid["grid_code"]}
    assert set(text("card-workers").split("、")) == names
    driver.save_screenshot(str(artefacts / "grid-card.png"))


def test_an_event_over_grpc_changes_the_count_within_5_s(demo, admin_page, artefacts):
    from citygrid.grpc_api._pb import intake_pb2
    from citygrid.grpc_api.client import CityGridClient

    driver, _ = admin_page
    code = driver.execute_script("return window.citygrid.selected")
    assert code, "the card test selects a grid first"
    lng, lat = driver.execute_script("return window.citygrid.gridFeatures.get(arguments[0]).label", code)
    before = int(driver.execute_script("return document.getElementById('card-count').textContent"))
    report = intake_pb2.EventReport(event_id="browser-live-1", category_code="0101", source="hotline_12345",
                                    lng=lng, lat=lat)
    report.occurred_at.FromDatetime(demo.clock())
    with CityGridClient(f"127.0.0.1:{demo.grpc_port}", demo.admin_token) as client:
        receipt = client.submit_events([report])[0]
        assert receipt.grid_code == code
        submitted = time.monotonic()
    wait_for(driver, "return document.getElementById('card-count').textContent === String(arguments[0])",
             before + 1, timeout=LIVE_SECONDS)
    elapsed = time.monotonic() - submitted
    assert driver.execute_script("return window.citygrid.values[arguments[0]]", code) == before + 1
    driver.save_screenshot(str(artefacts / "live-count.png"))
    print(f"the count reached the page {elapsed:.2f} s after SubmitEvents returned")


def test_a_raised_alert_appears(demo, admin_page, artefacts):
    alerts = getattr(demo.server.state, "alerts", None)
    if alerts is None:
        pytest.skip("this build's server runs no alert service (issue 13's AlertService is another branch)")
    from citygrid.grpc_api._pb import intake_pb2
    from citygrid.grpc_api.client import CityGridClient
    from served_demo import LOADER

    driver, _ = admin_page
    shown = set(driver.execute_script("return [...window.citygrid.alerts.keys()]"))
    code = driver.execute_script("return window.citygrid.grids[2000]")
    lng, lat = driver.execute_script("return window.citygrid.gridFeatures.get(arguments[0]).label", code)
    burst = []
    for k in range(40):
        report = intake_pb2.EventReport(event_id=f"browser-burst-{k}", category_code="0102", source="hotline_12345",
                                        lng=lng + (k % 5) * 1e-5, lat=lat + (k // 5) * 1e-5)
        report.occurred_at.FromDatetime(demo.clock())
        burst.append(report)
    with CityGridClient(f"127.0.0.1:{demo.grpc_port}", demo.admin_token) as client:
        client.submit_events(burst)
    alerts.run(LOADER, trigger="browser test burst")
    wait_for(driver, "return [...window.citygrid.alerts.keys()].some(id => !arguments[0].includes(id))",
             sorted(shown), timeout=LIVE_SECONDS + 5)
    assert driver.execute_script("return document.querySelectorAll('.alert-marker').length") >= 1
    # The new alert pulses a few times, not forever (an endless animation redraws a big screen all day).
    counts = driver.execute_script("return [...document.querySelectorAll('.alert-marker.fresh')]"
                                   ".map(el => getComputedStyle(el).animationIterationCount)")
    assert counts and all(c != "infinite" and float(c) > 0 for c in counts), counts
    # A count alert's line in the list says what was seen against what was expected.
    new_ids = [i for i in driver.execute_script("return [...window.citygrid.alerts.keys()]") if i not in shown]
    text = driver.execute_script(
        "return document.querySelector(`#alerts li[data-alert-id='${arguments[0]}']`).textContent", new_ids[0])
    assert "观测" in text and "期望" in text, text
    driver.save_screenshot(str(artefacts / "alert.png"))


def test_a_street_token_sees_its_street_only(demo, artefacts):
    layer = demo.server.state.registry.snapshot().layer
    streets = np.asarray(layer.column("street_code"))
    street = sorted(set(streets))[3]
    secret, _ = demo.server.state.tokens.issue("街道大屏", "dashboard", (street,))
    driver = _driver()
    try:
        state = log_in(driver, demo.url, secret)
        expected = set(layer.codes[streets == street])
        assert grid_codes_drawn(driver) == expected
        assert state["gridsDrawn"] == len(expected)
        assert street in driver.execute_script("return document.getElementById('who').textContent")
        driver.save_screenshot(str(artefacts / "street.png"))
    finally:
        driver.quit()
