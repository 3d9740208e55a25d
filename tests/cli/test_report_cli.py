"""``citygrid report`` against a real server (in this process) holding the demo's year as history:
one self-contained HTML file (every image inlined as a PNG that opens), its numbers are the store's
(the summary's count, each street's grade as the KPIs say), a street's token gets its street's
report, and without a ``--grids`` file the maps are drawn from the server's layer geometry."""

from __future__ import annotations

import base64
import io
import re
import sqlite3
from datetime import timedelta

import pytest
from history_server import NOW, TOKEN, history_server, run  # noqa: F401 (the fixture)
from PIL import Image

from citygrid.engine.database import database_path
from citygrid.grpc_api.client import CityGridClient

START, END = NOW - timedelta(days=30), NOW
WINDOW = ["--from", START.isoformat(), "--to", END.isoformat()]


@pytest.fixture(scope="module")
def report(history_server, demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    status, stdout, err = run(history_server, "report", *WINDOW, "-o", str(out), "--grids",
                              str(demo_dir / "grids.parquet"))
    assert status == 0, err
    return out, (out / "report.html").read_text(encoding="utf-8")


def test_one_self_contained_file_with_every_figure(report):
    out, page = report
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:|//)', page)
    for source in sources:
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.format == "PNG" and image.size[0] > 500
    assert {p.name for p in out.glob("*.png")} == {"grids.png", "h3.png", "year_on_year.png", "hour_weekday.png",
                                                 "top_community.png", "top_grid.png"}


def test_the_numbers_are_the_stores(report, history_server):
    _, page = report
    conn = sqlite3.connect(database_path(history_server.data))
    try:
        n = conn.execute("SELECT count(*) FROM events WHERE occurred_at >= ? AND occurred_at < ?",
                         (int(START.timestamp() * 1e6), int(END.timestamp() * 1e6))).fetchone()[0]
    finally:
        conn.close()
    assert f'<div class="k">上报事件</div><div class="v">{n:,}</div>' in page
    with CityGridClient(history_server.target, TOKEN) as client:
        kpis = client.kpis(START, END, unit="street").to_pylist()
        names = {g.street_code: g.street_name for g in client.list_grids()}
    for row in kpis:
        assert re.search(rf"<td>{names[row['street']]}</td>.*?>{row['grade']}</span>", page)


def test_a_street_token_gets_its_streets_report(history_server, demo_dir, tmp_path):
    with CityGridClient(history_server.target, TOKEN) as client:
        streets = {g.street_code: g.street_name for g in client.list_grids()}
        street = sorted(streets)[2]
        secret = client.issue_token("街道分析员", "dashboard", [street]).token
    status, _, err = run(history_server, "report", *WINDOW, "-o", str(tmp_path), "--grids",
                         str(demo_dir / "grids.parquet"), token=secret)
    assert status == 0, err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"统计范围：{streets[street]}" in page
    shown = set(re.findall(r"<td>(\S+街道)</td>", page))
    assert shown == {streets[street]}


def test_without_a_grids_file_the_maps_come_from_the_servers_geometry(history_server, tmp_path):
    status, _, err = run(history_server, "report", *WINDOW, "-o", str(tmp_path))
    assert status == 0, err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "the maps are left out" not in page and len(re.findall("<img ", page)) == 6
    assert {p.name for p in tmp_path.glob("*.png")} >= {"grids.png", "h3.png"}


def test_an_empty_window_exits_2(history_server, tmp_path):
    status, _, err = run(history_server, "report", "--from", END.isoformat(), "--to", START.isoformat(),
                         "-o", str(tmp_path))
    assert status == 2 and "--to must be after --from" in err


