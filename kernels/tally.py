"""Kernels of the live aggregates (numpy, numba, math only): counting events into the cells of a
dashboard query, replaying the audit log into per-event lifecycle columns, and order statistics
per cell.

A query is a list of *dimensions*. Each dimension maps an event to a code in ``[0, size)`` or
excludes it (-1); the cell of an event is ``sum(code[d] * stride[d])``. A dimension is either a
lookup table over one of the event's id columns (``kind`` :data:`BY_COLUMN`: ``lut[id + 1]``, so
``lut[0]`` is the code of "none", id -1) or a calendar bucket of the event's local report time
(hour, day, ISO week, month, hour of day, weekday). A dimension of size 1 is a filter. Jurisdiction
is separate because it is an OR over the levels of the event's area chain.
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels._jit import njit

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 86_400_000_000

# Dimension kinds.
BY_COLUMN = 0
HOUR = 1
DAY = 2
WEEK = 3  #: ISO week (Monday first), numbered from the week of 1970-01-01
MONTH = 4  #: year * 12 + month - 1
HOUR_OF_DAY = 5
WEEKDAY = 6  #: 0 Monday … 6 Sunday

# Event states as the mirror codes them (the order of the lifecycle's State enum).
REPORTED, REGISTERED, DISPATCHED, HANDLING, FED_BACK, VERIFIED, CLOSED, PARKED, REJECTED, DUPLICATE = range(10)
#: Stage index of each state code (-1: no stage clock runs): register, dispatch, handle, verify.
STAGE_OF_STATE = np.array([0, 1, 2, 2, 3, 3, -1, -1, -1, -1], dtype=np.int8)

# Bits of an event's flags.
F_REGISTERED = 1  #: reached registration (立案) at some time
F_DISPATCHED = 2  #: dispatched at least once
F_REWORKED = 4  #: sent back for rework at least once
F_ESCALATED0 = 8  #: escalated (督办) in stage s: F_ESCALATED0 << s
F_STAGE_DONE0 = 256  #: completed an interval in stage s: F_STAGE_DONE0 << s
#: The bits the escalations log sets (the rest come from the audit log).
F_ESCALATIONS = 15 * F_ESCALATED0

# Measures (columns of the counts table): the counts first (each event adds 0 or 1 to each, so none
# exceeds "reported"), then the sums of working µs. A day cube keeps the counts in a narrow table and
# the sums in an int64 one (:func:`tally_cells` writes into the two parts).
M_REPORTED = 0
M_REGISTERED = 1
M_DISPATCHED = 2
M_CLOSED = 3
M_CLOSED_ON_TIME = 4
M_OVERDUE_NOW = 5
M_REWORKED = 6
M_DUPLICATES = 7
M_ESCALATED = 8
M_HANDLED = 9
M_HANDLED_ON_TIME = 10
M_DISPATCHED_ON_TIME = 11
M_STAGE_N0 = 12  #: events with a completed interval in stage s: M_STAGE_N0 + s
N_COUNTS = 16  #: measures before this one are counts, the rest sums of working µs
M_CLOSE_US = 16  #: sum of working µs from receipt to closure (closed events)
M_STAGE_US0 = 17  #: sum of working µs in stage s: M_STAGE_US0 + s (events with F_STAGE_DONE0 << s)
N_MEASURES = 21
#: What :func:`tally_cells` returns when no open event counted has a deadline to come.
NEVER_DUE = np.iinfo(np.int64).max


@njit
def civil_month(day):
    """``year * 12 + month - 1`` of a day number since 1970-01-01 (Howard Hinnant's civil_from_days)."""
    z = day + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y * 12 + m - 1


@njit
def time_code(kind, local_us):
    """The calendar bucket number of a local time (µs since 1970-01-01 00:00 local)."""
    if kind == HOUR:
        return local_us // US_PER_HOUR
    day = local_us // US_PER_DAY
    if kind == DAY:
        return day
    if kind == WEEK:
        return (day + 3) // 7
    if kind == MONTH:
        return civil_month(day)
    if kind == HOUR_OF_DAY:
        return (local_us // US_PER_HOUR) % 24
    return (day + 3) % 7  # WEEKDAY


@njit
def cells_in_window(block_lo, block_hi, block_size, occurred, codes, t_lo, t_hi, offset_us, dim_kind, dim_col,
                    dim_lut_lo, dim_origin, dim_size, dim_stride, luts, allowed, allowed_lo, check_allowed, n_events,
                    some, listed, rows, cells, read, counts, sums, out):
    """Write the row and cell of every event reported in ``[t_lo, t_hi)`` that no dimension and
    no jurisdiction excludes into ``rows`` and ``cells``; returns how many. With measures ``read``
    (sorted indices into a row of ``out``, or all of them; a day cube's slots), each such slot's measures are added into
    ``out[cell]`` instead (its ``counts``, the measures before ``counts.shape[1]``, and ``sums``, the
    rest), in the same pass, and nothing is written to ``rows`` and ``cells``. Only blocks whose
    report-time range (``block_lo``/``block_hi``: least and greatest report time of each block of
    ``block_size`` events) meets the window are read. ``codes`` rows: 0 category, 1 class, 2
    source, 3 state, 4 worker, 5 grid, 6 community, 7 street, 8 district. With ``listed``, only the
    rows in ``some`` (sorted: the open events of a day cube's "overdue now") are read. The same kernel
    counts the slots of a day cube: a slot's report time is its local day's first instant."""
    k = 0
    n_dims = dim_kind.shape[0]
    n_some = some.shape[0]
    n_read = read.shape[0]
    n_counts = counts.shape[1]
    for b in range(block_lo.shape[0]):
        if block_hi[b] < t_lo or block_lo[b] >= t_hi:
            continue
        end = min((b + 1) * block_size, n_events)
        i = np.searchsorted(some, b * block_size) if listed else b * block_size
        while i < (n_some if listed else end):
            e = some[i] if listed else i
            i += 1
            if e >= end:
                break
            t = occurred[e]
            if t < t_lo or t >= t_hi:
                continue
            if check_allowed:
                ok = False
                for level in range(4):
                    v = codes[5 + level, e]
                    if v >= 0 and allowed[allowed_lo[level] + v]:
                        ok = True
                        break
                if not ok:
                    continue
            cell = 0
            for d in range(n_dims):
                if dim_kind[d] == BY_COLUMN:
                    code = luts[dim_lut_lo[d] + codes[dim_col[d], e] + 1]
                else:
                    code = time_code(dim_kind[d], t + offset_us) - dim_origin[d]
                    if code >= dim_size[d]:
                        code = -1
                if code < 0:
                    cell = -1
                    break
                cell += code * dim_stride[d]
            if cell < 0:
                continue
            if n_read == n_counts + sums.shape[1]:  # every measure: whole rows (the loops vectorise)
                for m in range(n_counts):
                    out[cell, m] += counts[e, m]
                for m in range(sums.shape[1]):
                    out[cell, n_counts + m] += sums[e, m]
            elif n_read:
                j = 0
                while j < n_read and read[j] < n_counts:
                    out[cell, read[j]] += counts[e, read[j]]
                    j += 1
                while j < n_read:
                    out[cell, read[j]] += sums[e, read[j] - n_counts]
                    j += 1
            else:
                rows[k] = e
                cells[k] = cell
            k += 1
    return k


@njit
def add_slot_count(block_lo, block_hi, block_size, day_us, codes, t_lo, t_hi, dim_col, dim_lut_lo, dim_stride, luts,
                   n_slots, indexed, slot_order, street_lo, streets, counts, out):
    """Add one count of every day-cube slot of ``[t_lo, t_hi)`` that no dimension excludes into
    ``out[cell]``: :func:`cells_in_window` with measures for the plain case (every dimension a
    column's, no jurisdiction, one count read: ``counts`` and ``out`` are that measure's
    columns), in a loop that does only that (about half the time a slot). With ``indexed``, only
    the slots of the streets ``streets`` (street id + 1 each; every other street is excluded by a
    dimension) are read, through :func:`order_slots_by_street`'s ``slot_order`` and ``street_lo``.
    Returns how many slots were added."""
    k = 0
    n_dims = dim_col.shape[0]
    n_parts = streets.shape[0] if indexed else 1
    for b in range(block_lo.shape[0]):
        if block_hi[b] < t_lo or block_lo[b] >= t_hi:
            continue
        base = b * block_size
        inside = block_lo[b] >= t_lo and block_hi[b] < t_hi  # every slot's day in the window: none read
        for q in range(n_parts):
            lo = street_lo[b, streets[q]] if indexed else 0
            hi = street_lo[b, streets[q] + 1] if indexed else min(block_size, n_slots - base)
            for i in range(lo, hi):
                s = base + (slot_order[base + i] if indexed else i)
                if not inside:
                    t = day_us[s]
                    if t < t_lo or t >= t_hi:
                        continue
                cell = 0
                for d in range(n_dims):
                    code = luts[dim_lut_lo[d] + codes[dim_col[d], s] + 1]
                    if code < 0:
                        cell = -1
                        break
                    cell += code * dim_stride[d]
                if cell < 0:
                    continue
                out[cell] += counts[s]
                k += 1
    return k


@njit
def add_slot_rows(block_lo, block_hi, block_size, day_us, codes, t_lo, t_hi, lut, n_slots, counts, sums, out):
    """Add every measure of every day-cube slot of ``[t_lo, t_hi)`` that its one dimension does not
    exclude into ``out[lut[code + 1]]`` (its ``counts``, then its ``sums``; ``codes``: the slots' ids
    of that column): :func:`cells_in_window` reading every measure, for one column's dimension
    and no jurisdiction (a month's KPIs by worker), in a loop that does only that (48,000 slots
    in 0.6 of the time; a loop over more dimensions took back half the gain). Returns how many
    slots were added."""
    k = 0
    n_counts, n_sums = counts.shape[1], sums.shape[1]
    for b in range(block_lo.shape[0]):
        if block_hi[b] < t_lo or block_lo[b] >= t_hi:
            continue
        for s in range(b * block_size, min((b + 1) * block_size, n_slots)):
            if day_us[s] < t_lo or day_us[s] >= t_hi:
                continue
            cell = lut[codes[s] + 1]
            if cell < 0:
                continue
            for m in range(n_counts):
                out[cell, m] += counts[s, m]
            for m in range(n_sums):
                out[cell, n_counts + m] += sums[s, m]
            k += 1
    return k


@njit
def order_slots_by_street(street, n_slots, block_size, first_block, slot_order, street_lo):
    """Order the slots of each block from ``first_block`` on by street (a counting sort): the slots
    of block ``b`` whose street id + 1 is ``v`` are ``b * block_size + slot_order[b * block_size + i]``
    for ``i`` in ``street_lo[b, v] … street_lo[b, v + 1] - 1`` (``slot_order`` holds offsets within
    the block; ``street_lo`` has a column more than there are street ids + 1)."""
    n_codes = street_lo.shape[1] - 1
    fill = np.empty(n_codes, np.int64)
    for b in range(first_block, -(-n_slots // block_size)):
        base = b * block_size
        end = min(base + block_size, n_slots)
        street_lo[b, :] = 0
        for s in range(base, end):
            street_lo[b, street[s] + 2] += 1
        for v in range(n_codes):
            street_lo[b, v + 1] += street_lo[b, v]
            fill[v] = street_lo[b, v]
        for s in range(base, end):
            v = street[s] + 1
            slot_order[base + fill[v]] = s - base
            fill[v] += 1


@njit
def tally_cells(rows, cells, codes, flags, open_rows, open_due, close_us, stage_us, now_us, sign, counts, sums):
    """Add ``sign`` times the measures of each event ``rows[k]`` into cell ``cells[k]``: the counts
    into ``counts[cell, measure]`` (measures before :data:`N_COUNTS`), the sums of working µs into
    ``sums[cell, measure - N_COUNTS]`` (a query passes the two parts of one table, a day cube its
    narrow counts and its sums; the caller sees that a narrow count cannot overflow). The deadlines are those of the open events that have one (``open_rows``
    sorted, ``open_due`` theirs): an open event is looked up there. Returns the earliest deadline not yet past (``>= now_us``) of the
    open events counted, ``INT64_MAX`` when none: until the clock passes it, "overdue now" of these
    events stays what was counted. (The tables are indexed by (cell, measure) directly: a row view
    per event costs a reference count.)"""
    next_due = NEVER_DUE
    for k in range(rows.shape[0]):
        e = rows[k]
        c = cells[k]
        f = flags[e]
        state = codes[3, e]
        counts[c, M_REPORTED] += sign
        if f & F_REGISTERED:
            counts[c, M_REGISTERED] += sign
        if f & F_DISPATCHED:
            counts[c, M_DISPATCHED] += sign
            if (f & ((F_ESCALATED0 << 0) | (F_ESCALATED0 << 1))) == 0:
                counts[c, M_DISPATCHED_ON_TIME] += sign
        if state == CLOSED:
            counts[c, M_CLOSED] += sign
            sums[c, M_CLOSE_US - N_COUNTS] += sign * close_us[e]
            if (f & (15 * F_ESCALATED0)) == 0:
                counts[c, M_CLOSED_ON_TIME] += sign
        if state <= VERIFIED:
            j = np.searchsorted(open_rows, e)
            if j < open_rows.shape[0] and open_rows[j] == e:
                due = open_due[j]
                if due < now_us:
                    counts[c, M_OVERDUE_NOW] += sign
                elif due < next_due:
                    next_due = due
        if f & F_REWORKED:
            counts[c, M_REWORKED] += sign
        if state == DUPLICATE:
            counts[c, M_DUPLICATES] += sign
        if f & (15 * F_ESCALATED0):
            counts[c, M_ESCALATED] += sign
        if f & (F_STAGE_DONE0 << 2):
            counts[c, M_HANDLED] += sign
            if (f & (F_ESCALATED0 << 2)) == 0:
                counts[c, M_HANDLED_ON_TIME] += sign
        if f & (15 * F_STAGE_DONE0):
            for s in range(4):
                if f & (F_STAGE_DONE0 << s):
                    sums[c, M_STAGE_US0 - N_COUNTS + s] += sign * stage_us[s, e]
                    counts[c, M_STAGE_N0 + s] += sign
    return next_due


@njit
def add_overdue(rows, cells, open_rows, open_due, now_us, out):
    """Add 1 into ``out[cells[k]]`` for each event ``rows[k]`` whose deadline is past ``now_us``:
    "overdue now" alone, as :func:`tally_cells` counts it, for events that are all among the open
    events with a deadline (``open_rows``, sorted; ``open_due`` theirs) and ascending, as a scan of
    those gives them, so their deadlines are found in one walk. Returns :func:`tally_cells`' next
    deadline (the earliest not yet past, ``INT64_MAX`` when none)."""
    next_due = NEVER_DUE
    j = 0
    for k in range(rows.shape[0]):
        while open_rows[j] < rows[k]:
            j += 1
        due = open_due[j]
        if due < now_us:
            out[cells[k]] += 1
        elif due < next_due:
            next_due = due
    return next_due


@njit
def collect_durations(rows, cells, codes, flags, close_us, stage_us, which, out_cells, out_values):
    """The (cell, working µs) pairs of one duration (``which``: 0-3 a stage, 4 receipt to closure)
    of the events that have it; returns how many were written."""
    k = 0
    for i in range(rows.shape[0]):
        e = rows[i]
        if which == 4:
            if codes[3, e] != CLOSED:
                continue
            v = close_us[e]
        else:
            if (flags[e] & (F_STAGE_DONE0 << which)) == 0:
                continue
            v = stage_us[which, e]
        out_cells[k] = cells[i]
        out_values[k] = v
        k += 1
    return k


@njit
def quantiles_by_cell(cells, values, n_cells, ranks, out):
    """Nearest-rank quantiles per cell: ``out[c, q]`` is the ``ceil(ranks[q] * n)``-th smallest of
    cell ``c``'s n values (at least the first), -1 for a cell with no values."""
    order = np.argsort(values, kind="mergesort")
    idx = order[np.argsort(cells[order], kind="mergesort")]
    out[:] = -1
    i = 0
    n = idx.shape[0]
    while i < n:
        c = cells[idx[i]]
        j = i
        while j < n and cells[idx[j]] == c:
            j += 1
        count = j - i
        for q in range(ranks.shape[0]):
            r = int(np.ceil(ranks[q] * count - 1e-9))
            if r < 1:
                r = 1
            out[c, q] = values[idx[i + r - 1]]
        i = j


@njit
def replay_audit(event_row, state_of, worked, to_state, action, first_worked, last_worked, last_state, flags,
                 stage_us, close_us):
    """Fold audit rows (in log order for each event) into the per-event lifecycle columns.

    ``event_row``: the mirror row of each audit row's event; ``state_of``: where the replay keeps
    that event's first and last working µs and last state (``first_worked``, ``last_worked``,
    ``last_state``: -1, no row seen yet), which only a replay needs; ``worked``: working µs at the
    row's time; ``action``: 1 rework, 0 anything else. An interval between two rows of an event
    counts in the stage of the state the first one left it in.
    """
    for k in range(event_row.shape[0]):
        e = event_row[k]
        x = state_of[k]
        t_state = to_state[k]
        w = worked[k]
        if last_state[x] < 0:
            first_worked[x] = w
        else:
            s = STAGE_OF_STATE[last_state[x]]
            if s >= 0:
                stage_us[s, e] += w - last_worked[x]
                flags[e] |= F_STAGE_DONE0 << s
        if t_state != REPORTED and t_state != REJECTED and t_state != DUPLICATE:
            flags[e] |= F_REGISTERED
        if t_state == DISPATCHED:
            flags[e] |= F_DISPATCHED
        if action[k] == 1:
            flags[e] |= F_REWORKED
        if t_state == CLOSED:
            close_us[e] = w - first_worked[x]
        last_worked[x] = w
        last_state[x] = t_state


@njit
def mark_escalations(event_row, stage, flags):
    """Set the escalation bit of each (event, stage index) escalation row."""
    for k in range(event_row.shape[0]):
        if stage[k] >= 0:
            flags[event_row[k]] |= F_ESCALATED0 << stage[k]


@njit
def follow_open(listed, listed_due, rows, state, due):
    """The open events with a deadline (sorted rows ``listed``, ``listed_due`` theirs) after some
    events were read: of ``rows`` (distinct, any order; ``state`` and ``due`` theirs, -1: no
    deadline) those listed are dropped and those open with a deadline listed. One merge pass (the
    rows read are a batch, the list can be long): returns the new (rows, deadlines)."""
    order = np.argsort(rows)
    n_listed, n = listed.shape[0], rows.shape[0]
    out_rows = np.empty(n_listed + n, dtype=np.int64)
    out_due = np.empty(n_listed + n, dtype=np.int64)
    i = j = k = 0
    while i < n_listed or j < n:
        if j < n and (i >= n_listed or rows[order[j]] <= listed[i]):
            e = order[j]
            if i < n_listed and rows[e] == listed[i]:
                i += 1  # read again: listed as it is now, or not at all
            if state[e] <= VERIFIED and due[e] >= 0:
                out_rows[k] = rows[e]
                out_due[k] = due[e]
                k += 1
            j += 1
        else:
            out_rows[k] = listed[i]
            out_due[k] = listed_due[i]
            k += 1
            i += 1
    return out_rows[:k].copy(), out_due[:k].copy()


@njit
def block_ranges(occurred, n_events, block_size, block_lo, block_hi, first_block):
    """Recompute the report-time range of blocks ``first_block`` … over the first ``n_events``."""
    for b in range(first_block, block_lo.shape[0]):
        lo = np.iinfo(np.int64).max
        hi = np.iinfo(np.int64).min
        end = min((b + 1) * block_size, n_events)
        for e in range(b * block_size, end):
            t = occurred[e]
            if t < lo:
                lo = t
            if t > hi:
                hi = t
        block_lo[b] = lo
        block_hi[b] = hi

