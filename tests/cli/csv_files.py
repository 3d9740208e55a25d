"""Writing small CSV inputs for the command tests."""

from __future__ import annotations

import csv


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)
