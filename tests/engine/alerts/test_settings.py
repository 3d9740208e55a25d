"""The ``[alerts]`` table: the shipped defaults, what a config file changes, bad values named."""

from __future__ import annotations

import pytest

from citygrid.engine.alerts.settings import AlertSettings
from citygrid.engine.errors import InvalidInput
from citygrid.grpc_api.config import ServerConfig


def test_defaults_and_a_config_file():
    shipped = AlertSettings()
    assert (shipped.method, shipped.min_sigma, shipped.levels, shipped.interval_seconds) == ("C3", 0.7, ("grid",), 3600.0)
    assert shipped.options.alpha is None and shipped.lookback_days == 11  # 7 days, C2's gap of 2, C3's 2 more
    assert shipped.class_options.min_sigma == 1.0 and shipped.class_options.method == "C3"
    assert shipped.classes is True and ServerConfig.from_toml("[alerts]\nclasses = false").alerts.classes is False
    config = ServerConfig.from_toml('[alerts]\ninterval_seconds = 60\nmethod = "C2"\nalpha = 0.01\n'
                                    'levels = ["grid", "street", "grid"]\nbackfill_days = 30')
    a = config.alerts
    assert (a.interval_seconds, a.method, a.alpha, a.levels, a.backfill_days) == (60, "C2", 0.01, ("grid", "street"), 30)
    assert a.lookback_days == 9 and a.method_name == "ears C2"


@pytest.mark.parametrize("table, message", [
    ("method = 'C4'", "method must be C1, C2 or C3"),
    ("interval_seconds = 0", "interval_seconds must be a positive number"),
    ("alpha = 0.7", "alpha must be a number between 0 and 0.5"),
    ("baseline_days = 2", "baseline_days must be a whole number >= 3"),
    ("levels = ['grid', 'city']", "levels must be a list of grid, community, street, district"),
    ("timezone = 'Mars/Olympus'", "timezone must be an IANA name"),
    ("every = 5", "unknown keys ['every']"),
    ("classes = 'yes'", "classes must be true or false"),
    ("class_min_sigma = -1", "class_min_sigma must be a number >= 0"),
])
def test_bad_values_are_named(table, message):
    with pytest.raises(InvalidInput, match=r"\[alerts\] " + message.replace("[", r"\[").replace("]", r"\]")):
        ServerConfig.from_toml(f"[alerts]\n{table}")
