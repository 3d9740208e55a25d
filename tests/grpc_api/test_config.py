"""The ``[intake]`` table of the server config: parsed into the engine's IntakeConfig and taxonomy,
the engine's defaults when absent, bad values refused naming the key, and a server started with it
links (or does not link) duplicate reports over gRPC as it says."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone
from importlib import resources

import grpc
import pytest
from grpc_env import LAT0, LNG0, NOW, SPAN, box_layer, start_server

from citygrid.engine.cases.duplicates import distance_m
from citygrid.engine.errors import InvalidInput
from citygrid.engine.cases.intake import IntakeConfig
from citygrid.engine.layers.registry import LayerRegistry
from citygrid.engine.dispatch.worktime import HolidayCalendar
from citygrid.grpc_api._pb import intake_pb2
from citygrid.engine.cases.settings import CLOCK_INTERVAL_S, IntakeSettings
from citygrid.grpc_api.config import ServerConfig, load_config

#: One metre east, in degrees of longitude, at the test square's latitude.
METRE_LNG = 1 / (111_320 * math.cos(math.radians(LAT0 + SPAN / 2)))


def write_taxonomy(path, *, minutes: int) -> None:
    """The shipped taxonomy's first class alone, every stage limit set to ``minutes``, as version 'test'."""
    payload = json.loads(resources.files("citygrid.engine").joinpath("data/taxonomy.json").read_text("utf-8"))
    payload["classes"] = payload["classes"][:1]
    payload["version"] = "test"
    for category in payload["classes"][0]["categories"]:
        category["time_limits"] = {stage: minutes for stage in category["time_limits"]}
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def test_every_key_reaches_the_engine_config(tmp_path):
    (tmp_path / "conf").mkdir()
    write_taxonomy(tmp_path / "conf" / "taxonomy.json", minutes=7)
    (tmp_path / "conf" / "calendar.json").write_text(json.dumps(
        {"name": "test-calendar", "weekend": [6], "holidays": ["2026-05-01"], "workdays": ["2026-05-03"]}))
    path = tmp_path / "conf" / "citygrid.toml"
    path.write_text("""
[server]
data_dir = "data"

[intake]
taxonomy_file = "taxonomy.json"
calendar_file = "calendar.json"
working_hours = ["09:00-12:30", "13:30-17:30"]
timezone = "Asia/Urumqi"
duplicate_distance_m = 12.5
duplicate_window_minutes = 90
street_escalation_after_minutes = 30
max_hops = 2
auto_register = false
max_batch = 500
clock_interval = 2.5
sources = ["hotline_12345", "城管通"]
max_report_age_days = 30
max_report_ahead_minutes = 2.5
clock_start = 2026-12-07T03:05:00+08:00
""")
    config = load_config(path)
    settings = config.intake
    assert config.data_dir == tmp_path / "conf" / "data"
    assert settings.taxonomy_file == tmp_path / "conf" / "taxonomy.json"  # relative to the file's folder
    assert settings.clock_interval == 2.5
    start = datetime(2026, 12, 6, 19, 5, tzinfo=timezone.utc)
    assert settings.clock_start == start
    clock = settings.clock()  # starts at clock_start and runs on from there
    assert timedelta(0) <= clock() - start < timedelta(minutes=1)

    engine = settings.intake_config
    assert isinstance(engine, IntakeConfig)
    assert [f"{a:%H:%M}-{b:%H:%M}" for a, b in engine.schedule.periods] == ["09:00-12:30", "13:30-17:30"]
    assert engine.schedule.timezone == "Asia/Urumqi"
    calendar = engine.schedule.calendar
    assert calendar.name == "test-calendar" and calendar.weekend == {6}
    assert not calendar.is_working_day(date(2026, 5, 1)) and calendar.is_working_day(date(2026, 5, 3))
    assert calendar.is_working_day(date(2026, 5, 2))  # a Saturday, but only Sunday is the weekend here
    assert (engine.duplicates.distance_m, engine.duplicates.window_minutes) == (12.5, 90.0)
    assert engine.escalation.street_after_minutes == 30.0
    assert (engine.max_hops, engine.auto_register, engine.max_batch) == (2, False, 500)
    assert engine.sources == {"hotline_12345", "城管通"}
    assert (engine.max_report_age, engine.max_report_ahead) == (timedelta(days=30), timedelta(minutes=2.5))

    taxonomy = settings.taxonomy
    assert taxonomy.version == "test" and len(taxonomy.classes) == 1
    assert {c.limits.handle for c in taxonomy.categories} == {7}


def test_no_intake_table_gives_the_engine_defaults():
    config = ServerConfig.from_toml("[server]\nport = 6000\n")
    assert config.intake == IntakeSettings()
    assert config.intake.intake_config == IntakeConfig()
    assert config.intake.taxonomy is None  # the intake loads the shipped one
    assert config.intake.clock_interval == CLOCK_INTERVAL_S
    assert config.intake.clock_start is None and config.intake.clock() is None  # the system clock
    assert config.intake.intake_config.schedule.calendar == HolidayCalendar.china()


@pytest.mark.parametrize("toml, message", [
    ("[intake]\nmax_hop = 2", r"unknown \[intake\] keys \['max_hop'\]; known keys are \[.*'max_hops'"),
    ("[intak]\nmax_hops = 2", r"unknown config tables or keys \['intak'\]"),
    ("intake = 3", r"\[intake\] must be a table"),
    ("[server]\nintake = 3", r"unknown \[server\] keys \['intake'\]"),
    ("[intake]\nmax_hops = -1", r"\[intake\] max_hops must be a whole number >= 0, got -1"),
    ("[intake]\nmax_hops = 1.5", r"max_hops must be a whole number >= 0, got 1.5"),
    ("[intake]\nmax_batch = 0", r"max_batch must be a whole number >= 1"),
    ("[intake]\nauto_register = \"yes\"", r"auto_register must be true or false, got 'yes'"),
    ("[intake]\nduplicate_distance_m = \"far\"", r"duplicate_distance_m must be a number >= 0, got 'far'"),
    ("[intake]\nduplicate_window_minutes = -5", r"duplicate_window_minutes must be a number >= 0, got -5"),
    ("[intake]\nduplicate_distance_m = inf", r"duplicate_distance_m must be a number >= 0, got inf"),
    ("[intake]\nstreet_escalation_after_minutes = -1", r"street_escalation_after_minutes must be a number >= 0"),
    ("[intake]\nclock_interval = 0", r"clock_interval must be a number > 0, got 0"),
    ("[intake]\nclock_start = 2026-12-07T03:05:00", r"\[intake\] clock_start 2026-12-07T03:05:00 has no time zone"),
    ("[intake]\nclock_start = \"tonight\"", r"\[intake\] clock_start must be a date and time like 2026-"),
    ("[intake]\nclock_start = 2026-12-07", r"\[intake\] clock_start must be a date and time, got datetime.date"),
    ("[intake]\nworking_hours = \"08:00-12:00\"", r"working_hours must be a list of \"HH:MM-HH:MM\" strings"),
    ("[intake]\nworking_hours = [\"8-12\"]", r"\[intake\] bad working period '8-12'"),
    ("[intake]\nworking_hours = [\"14:00-18:00\", \"08:00-12:00\"]", r"\[intake\] working periods must be in order"),
    ("[intake]\nworking_hours = []", r"\[intake\] a work schedule needs at least one working period"),
    ("[intake]\ntimezone = \"Mars/Olympus_Mons\"", r"\[intake\] unknown time zone 'Mars/Olympus_Mons'"),
    ("[intake]\ncalendar_file = \"missing.json\"", r"\[intake\] no calendar file .*missing.json"),
    ("[intake]\ntaxonomy_file = \"missing.json\"", r"\[intake\] cannot read the taxonomy file .*missing.json"),
    ("[intake]\ntaxonomy_file = 7", r"\[intake\] taxonomy_file must be a file path, got 7"),
    ("[intake]\nfirst_responders = []", r"\[intake\] first_responders must be a non-empty list of names"),
    ("[intake]\nsources = []", r"\[intake\] sources must be a non-empty list of names"),
    ("[intake]\nsources = \"hotline_12345\"", r"\[intake\] sources must be a non-empty list of names"),
    ("[intake]\nmax_report_age_days = -1", r"max_report_age_days must be a number >= 0 and <= 36500, got -1"),
    ("[intake]\nmax_report_age_days = 1e9", r"max_report_age_days must be a number >= 0 and <= 36500"),
    ("[intake]\nmax_report_ahead_minutes = \"soon\"", r"max_report_ahead_minutes must be a number >= 0"),
    ("[[intake.routing]]\ncategory = \"0101\"\ndepartments = [\"消防\"]\nteam = \"a\"",
     r"rule 1: unknown keys \['team'\]"),
    ("[[intake.routing]]\ndepartments = [\"消防\"]", r"rule 1 needs a category, category_class, grid_type or area"),
    ("[[intake.routing]]\ncategory = \"9999\"\ndepartments = [\"消防\"]", r"rule 1: no category '9999' in taxonomy"),
    ("[[intake.routing]]\ncategory_class = \"99\"\ndepartments = [\"消防\"]", r"rule 1: no category class '99'"),
    ("[[intake.routing]]\ngrid_type = \"03\"\ndepartments = \"消防\"", r"rule 1 departments must be a non-empty list"),
    ("[[intake.routing]]\ngrid_type = \"03\"", r"rule 1 departments must be a non-empty list"),
])
def test_bad_values_are_refused_naming_the_key(toml, message, tmp_path):
    with pytest.raises(InvalidInput, match=message):
        ServerConfig.from_toml(toml, base=tmp_path)


def test_bad_files_are_refused_at_load(tmp_path):
    (tmp_path / "taxonomy.json").write_text('{"name": "broken", "version": "1", "classes": [{"code": "01"}]}')
    with pytest.raises(InvalidInput, match=r"\[intake\] .*taxonomy.json: malformed taxonomy"):
        ServerConfig.from_toml('[intake]\ntaxonomy_file = "taxonomy.json"', base=tmp_path)
    (tmp_path / "calendar.json").write_text('{"holidays": ["2026-05-01"], "workdays": ["2026-05-01"]}')
    with pytest.raises(InvalidInput, match=r"\[intake\] calendar .*2026-05-01 is listed both"):
        ServerConfig.from_toml('[intake]\ncalendar_file = "calendar.json"', base=tmp_path)
    with pytest.raises(InvalidInput, match="max_hops must be a whole number"):
        IntakeSettings(max_hops=True)  # made in Python, checked the same way


def box_server(tmp_path, version_id: str, toml: str):
    """A server over an active 8 x 8 box layer, its intake set up by the config file ``toml``."""
    registry = LayerRegistry(tmp_path / "data")
    try:
        registry.register(box_layer(version_id, 8))
        registry.publish(version_id)
        registry.activate(version_id)
    finally:
        registry.close()
    path = tmp_path / "citygrid.toml"
    path.write_text(toml)
    return start_server(tmp_path / "data", intake=load_config(path).intake)


@pytest.fixture
def short_duplicates(tmp_path):
    """A server whose config links duplicates within 10 m and 30 minutes, registers nothing by itself
    and takes batches of at most 5 reports; over one 8 x 8 box layer."""
    env = box_server(tmp_path, "d1", "[intake]\nduplicate_distance_m = 10\nduplicate_window_minutes = 30\n"
                                     "auto_register = false\nmax_batch = 5\n")
    yield env
    assert env.server.stop(0).wait(10)


def test_a_short_duplicate_distance_and_window_over_grpc(short_duplicates):
    t0 = NOW - timedelta(hours=2)
    lng, lat = LNG0 + 2.5 * SPAN / 8, LAT0 + 2.5 * SPAN / 8

    def report(event_id: str, metres_east: float, minutes: float) -> intake_pb2.EventReport:
        message = intake_pb2.EventReport(event_id=event_id, category_code="0101", source="hotline_12345",
                                         lng=lng + metres_east * METRE_LNG, lat=lat)
        message.occurred_at.FromDatetime(t0 + timedelta(minutes=minutes))
        return message

    reports = [
        report("first", 0, 0),
        report("near-soon", 5, 5),       # 5 m, 5 minutes: linked
        report("far", 20, 0),            # 20 m: linked by the default 50 m, not by 10 m
        report("late", 1, 60),           # 1 m but 60 minutes later: linked by the default day, not by 30 minutes
    ]
    assert 4 < distance_m(lng, lat, lng + 5 * METRE_LNG, lat) < 6
    assert 19 < distance_m(lng, lat, lng + 20 * METRE_LNG, lat) < 21
    with short_duplicates.client() as admin:
        receipts = admin.submit_events(reports)
        assert [r.error.code for r in receipts] == [""] * 4
        assert [(r.state, r.duplicate_of) for r in receipts] == [
            ("reported", ""), ("duplicate", "first"), ("reported", ""), ("reported", "")]  # auto_register = false
        assert admin.get_event("near-soon").event.duplicate_of == "first"
        with pytest.raises(grpc.RpcError) as info:
            admin.submit_events([report(f"big-{k}", 0, 0) for k in range(6)])
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 5" in info.value.details()


def test_routing_rules_reach_the_dispatcher_most_specific_first():
    config = ServerConfig.from_toml("""
[intake]
first_responders = ["网格员", "综治"]

[[intake.routing]]
category_class = "08"
grid_type = "03"
departments = ["消防"]
skill = "08"

[[intake.routing]]
category = "0801"
area = "440307001"
departments = ["安监"]
""")
    rules = config.intake.routing_rules
    assert config.intake.first_responders == ("网格员", "综治")
    route = rules.route("0801", "08", "03", ("g", "c", "440307002", "440307"))  # a type-03 grid elsewhere
    assert route.departments == {"消防"} and route.skill == "08"
    route = rules.route("0801", "08", "03", ("g", "c", "440307001", "440307"))  # the area rule is more specific
    assert route.departments == {"安监"} and route.skill is None
    route = rules.route("0101", "01", "03", ("g", "c", "440307001", "440307"))  # the taxonomy's own rule
    assert route.departments == {"城管", "网格员", "综治"} and route.skill == "01"
    assert rules.route("unknown", None).departments == {"网格员", "综治"}


def test_a_routing_rule_of_the_config_dispatches_over_grpc(tmp_path):
    """A ``[[intake.routing]]`` rule sends 市容 matters (class 01) inside community C00 to the fire
    brigade's worker of the grid; elsewhere they go to the grid worker as the taxonomy says."""
    env = box_server(tmp_path, "r1", '[[intake.routing]]\ncategory_class = "01"\narea = "C00"\ndepartments = ["消防"]\n')
    try:
        step = SPAN / 8
        workers = [intake_pb2.Worker(worker_id=f"{dept}-{i}{j}", grid_code=f"G{i:03d}{j:03d}@r1", department=dept,
                                     skills=["01"], shift="always")
                   for i, j in ((0, 0), (6, 6)) for dept in ("网格员", "消防")]

        def report(event_id: str, i: int, j: int) -> intake_pb2.EventReport:
            message = intake_pb2.EventReport(event_id=event_id, category_code="0101", source="hotline_12345",
                                             lng=LNG0 + (i + 0.5) * step, lat=LAT0 + (j + 0.5) * step)
            message.occurred_at.FromDatetime(NOW)
            return message

        with env.client() as admin:
            admin.intake.PutWorkers(intake_pb2.PutWorkersRequest(workers=workers), metadata=admin.metadata)
            inside, outside = admin.submit_events([report("in-C00", 0, 0), report("in-C33", 6, 6)])
        assert (inside.grid_code, inside.worker_id) == ("G000000@r1", "消防-00")
        assert (outside.grid_code, outside.worker_id) == ("G006006@r1", "网格员-66")
    finally:
        assert env.server.stop(0).wait(10)


def test_the_analytics_table_reaches_the_kpis_over_grpc(tmp_path):
    """``[analytics]`` weights and bands from the file decide the grade a server's KPIs give."""
    from citygrid.grpc_api.config import load_config

    path = tmp_path / "citygrid.toml"
    path.write_text('[analytics]\ntimezone = "UTC"\n[analytics.weights]\non_time_disposal = 0\n'
                    'closure = 1\nrework = 0\ntimely_dispatch = 0\n[analytics.grades]\nA = 3\nB = 2\nC = 1\nD = 0\n')
    config = load_config(path)
    assert config.analytics.weights == {"on_time_disposal": 0.0, "closure": 1.0, "rework": 0.0, "timely_dispatch": 0.0}
    data_dir = tmp_path / "data"
    registry = LayerRegistry(data_dir)
    registry.register(box_layer("v1", 4))
    registry.publish("v1", NOW - timedelta(days=1))
    registry.activate("v1")
    registry.close()
    env = start_server(data_dir, analytics=config.analytics)
    try:
        with env.client() as admin:
            report = intake_pb2.EventReport(event_id="kpi-1", category_code="0101", source="hotline_12345",
                                            lng=LNG0 + SPAN / 8, lat=LAT0 + SPAN / 8)
            report.occurred_at.FromDatetime(NOW)
            admin.submit_events([report])
            table = admin.kpis(NOW - timedelta(hours=1), NOW + timedelta(hours=1), unit="street")
            hours = admin.aggregate(NOW - timedelta(hours=1), NOW + timedelta(hours=1), bucket="hour_of_day")
        # Registered, not closed: closure 0 % is the only weighted rate, so the score is 0, which
        # the file's bands grade D (the default bands: E).
        assert table.column("score").to_pylist() == [0.0] and table.column("grade").to_pylist() == ["D"]
        # Hours of day in the file's time zone (UTC: 02, where Asia/Shanghai says 10).
        assert hours.column("hour_of_day").to_pylist() == [NOW.hour] and NOW.hour == 2
    finally:
        env.server.stop(1).wait(10)


@pytest.mark.parametrize("toml, words", [
    ("[analytics]\ncolour = 1", "unknown keys colour"),
    ("[analytics.weights]\nclosure = -1", "weights.closure"),
    ("[analytics.grades]\nA = 50\nB = 60", "fall from A to D"),
    ("[analytics.denominators]\nclosure = 'closed'", "denominators.closure"),
])
def test_bad_analytics_values_are_refused_naming_the_key(toml, words):
    from citygrid.grpc_api.config import ServerConfig

    with pytest.raises(InvalidInput, match=words):
        ServerConfig.from_toml(toml)
