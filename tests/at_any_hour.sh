#!/usr/bin/env bash
# The default test suite on a shifted system clock (libfaketime: apt-get install faketime), to show
# that no test depends on the hour or the day it runs at: once at 03:05 on a Monday night in
# Shenzhen, outside every day shift, and once at 10:00 on National Day (2026-10-01, an official
# holiday in engine/data/calendar_cn.json). The clock starts at the given instant and runs on; every
# process the tests start (servers, Ray) inherits it. Extra arguments go to pytest.
#
# Only the wall clock is shifted (FAKETIME_DONT_FAKE_MONOTONIC=1): libfaketime 0.9.10 also shifts
# CLOCK_MONOTONIC, but not the deadline of sem_clockwait, which CPython uses for every timed wait on
# a lock or condition, so with a shifted monotonic clock Condition.wait(0.5) sleeps for the shift
# (a day) instead of half a second. The hour, the weekday and the holiday come from the wall clock.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v faketime >/dev/null || { echo "at_any_hour: needs libfaketime (apt-get install faketime)" >&2; exit 2; }
for at in "2026-12-07 03:05:00 +0800" "2026-10-01 10:00:00 +0800"; do
  echo "at_any_hour: pytest at $at"
  FAKETIME_DONT_FAKE_MONOTONIC=1 faketime "$at" .venv/bin/pytest -q "$@"
done
