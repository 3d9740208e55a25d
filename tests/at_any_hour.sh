#!/usr/bin/env bash
# The default test suite on a shifted system clock, to show that no test depends on the hour or the
# day it runs at: once at 03:05 on the next Monday night in Shenzhen, outside every day shift, and
# once at 10:00 on the next official holiday that engine/data/calendar_cn.json lists. Both instants
# lie ahead of the real clock: with the clock set back, Ray's own processes misbehave (see README).
# When the calendar lists no holiday ahead (December, before the next year's notice is added), the
# second run takes the next Sunday, a rest day by the same calendar rule, and says so. The wall clock
# starts at the given instant and runs on; every process the tests start (servers, Ray) inherits it
# through LD_PRELOAD. Extra arguments go to pytest.
#
# The library is the libfaketime that the `libfaketime` package from PyPI ships (installed into .venv
# when absent), with only the wall clock shifted (FAKETIME_DONT_FAKE_MONOTONIC=1). Debian's faketime
# 0.9.10 does not serve: with the monotonic clock shifted, CPython's timed waits (Condition.wait,
# through sem_clockwait, which it does not intercept) sleep for the whole shift; with it unshifted,
# its clock_nanosleep still takes the shift off absolute monotonic deadlines, so time.sleep fails
# with EINVAL. The PyPI build intercepts only the clock reads, so every wait and sleep stays real.
set -euo pipefail
cd "$(dirname "$0")/.."
find_lib() {
  .venv/bin/python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("libfaketime")
print(pathlib.Path(spec.origin).parent / "vendor/libfaketime/src/libfaketime.so.1" if spec else "")
PY
}
lib=$(find_lib)
if [ -z "$lib" ]; then
  .venv/bin/pip install -q libfaketime
  lib=$(find_lib)
fi
mapfile -t instants < <(.venv/bin/python - <<'PY'
import datetime as dt, json, pathlib, zoneinfo
tz = zoneinfo.ZoneInfo("Asia/Shanghai")
now = dt.datetime.now(tz)
monday = (now + dt.timedelta(days=(7 - now.weekday()) % 7 or 7)).date()
print(f"{monday} 03:05:00 +0800")
calendar = json.loads(pathlib.Path("engine/data/calendar_cn.json").read_text("utf-8"))
ahead = sorted(d for d in calendar["holidays"] if dt.date.fromisoformat(d) > now.date())
if ahead:
    print(f"{ahead[0]} 10:00:00 +0800")
else:
    sunday = now.date() + dt.timedelta(days=(6 - now.weekday()) % 7 or 7)
    print(f"{sunday} 10:00:00 +0800")
    import sys; print("at_any_hour: no holiday ahead in calendar_cn.json; the rest-day run is on Sunday", sunday, file=sys.stderr)
PY
)
status=0  # both runs happen; the script fails if either does
for at in "${instants[@]}"; do
  echo "at_any_hour: pytest at $at"
  shift_s=$(( $(date -d "$at" +%s) - $(date +%s) ))
  LD_PRELOAD="$lib" FAKETIME="${shift_s:+$( [ "$shift_s" -ge 0 ] && echo + )}$shift_s" FAKETIME_DONT_FAKE_MONOTONIC=1 \
    .venv/bin/pytest -q "$@" || status=$?
done
exit "$status"
