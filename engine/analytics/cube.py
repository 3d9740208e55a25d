"""The day cube: the measures of the mirror's events summed per (area chain, category, worker,
local day), kept exact at every catch-up, so a query whose dimensions and measures it can answer
reads a few slots per day instead of every event of its window.

A *slot* is one (grid, community, street, district, category, worker, local day) combination; its
values are the sums of :func:`~citygrid.kernels.tally.tally_cells` over its events (every measure
but "overdue now", which depends on the clock). The mirror withdraws an event from its slot before
its columns change (a lifecycle action, a relocation, a re-grid, an escalation) and deposits it
again after, in the same catch-up, so the sums are always those of the events as they are now.

Slots have the mirror's code rows (category, class, worker and the area chain; source and state
are not kept: -1) and the first instant of their local day as report time, so the kernels that
count events count slots too (:func:`~citygrid.kernels.tally.cells_in_window`). The day is local
under one UTC offset (the analytics' time zone's at start): a window whose offset is another, or
that does not start and end at local midnight, is counted over events.

"Overdue now" is counted at query time over the open events with a deadline only (the mirror's
sorted ``open_rows``), which are few next to the window's events.
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels import slots as slot_kernels
from citygrid.kernels import tally

#: Slots per block of the cube's report-time zone map.
BLOCK = 1024
#: The next width of a slot's counts.
_WIDER = {np.dtype(np.int8): np.int16, np.dtype(np.int16): np.int32, np.dtype(np.int32): np.int64}
#: Code rows of the mirror a slot keeps (the rest are -1 in its codes).
KEPT_ROWS = (0, 1, 4, 5, 6, 7, 8)
_KEPT_ROWS = np.array(KEPT_ROWS)
#: Room added when live aggregates outgrow their arrays: a sixty-fourth of them (and at least
#: ``least`` rows). A half would take a 10 M-event mirror from 988 to about 1,480 MiB at the first
#: event after its rebuild; a sixty-fourth to about 1,004, copied once every ~156,000 events.
GROWTH = 64


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an array, as ``np.unique`` gives them: one sort and a compare
    (numpy 2's ``np.unique`` goes through a hash table first, 4 times slower on a batch's 1,000)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def room_for(needed: int, capacity: int, least: int) -> int:
    """The capacity to grow to when ``needed`` rows outgrow ``capacity`` (see :data:`GROWTH`)."""
    return max(needed, capacity + max(capacity // GROWTH, least))


class DayCube:
    """Slots of a mirror's events (see the module's notes)."""

    def __init__(self, offset_us: int):
        self.offset_us = int(offset_us)
        #: False once an id outgrew its bits of the key: every query is then counted over events.
        self.usable = True
        self.n = 0
        #: Slots by key (12 bytes a slot, where a dict took about 100) and place ids by packed area chain.
        #: An event's slot is found again from its key (its columns, as they were when it was put in).
        self._slot_of_key = Numbering(np.uint64)
        self._place_of_chain = Numbering(np.int64)
        #: The slots' code rows (the mirror's width) and counts (int8: most slots hold a few events;
        #: widened when a slot outgrows them, :meth:`_fit_counts`); their sums of working µs are int64.
        self.codes = np.empty((9, 0), dtype=np.int16)
        self.counts = np.empty((0, tally.N_COUNTS), dtype=np.int8)
        self._allocate(0)
        #: The slots by street within each block (:meth:`slots_by_street`), made at the first query
        #: that reads them, for the first :attr:`_ordered` slots.
        self._ordered = 0
        #: True while a long catch-up places slots read by read (grown by half, then :meth:`trim`).
        self.placing = False
        self._slot_order = np.empty(0, dtype=np.uint16)
        self._street_lo = np.zeros((0, 2), dtype=np.int16)

    def _allocate(self, capacity: int) -> None:
        n = self.n
        day_us = np.zeros(capacity, dtype=np.int64)
        codes = np.full((9, capacity), -1, dtype=self.codes.dtype)
        counts = np.zeros((capacity, tally.N_COUNTS), dtype=self.counts.dtype)
        sums = np.zeros((capacity, tally.N_MEASURES - tally.N_COUNTS), dtype=np.int64)
        if n:
            day_us[:n], codes[:, :n], counts[:n], sums[:n] = self.day_us[:n], self.codes[:, :n], self.counts[:n], self.sums[:n]
        self.capacity, self.day_us, self.codes, self.counts, self.sums = capacity, day_us, codes, counts, sums
        n_blocks = -(-capacity // BLOCK)
        self.block_lo = np.full(n_blocks, np.iinfo(np.int64).max, dtype=np.int64)
        self.block_hi = np.full(n_blocks, np.iinfo(np.int64).min, dtype=np.int64)
        tally.block_ranges(self.day_us, n, BLOCK, self.block_lo, self.block_hi, 0)

    @property
    def nbytes(self) -> int:
        return (sum(x.nbytes for x in (self.day_us, self.codes, self.counts, self.sums, self.block_lo, self.block_hi,
                                       self._slot_order, self._street_lo))
                + self._slot_of_key.nbytes + self._place_of_chain.nbytes)

    def answers(self, windows) -> bool:
        """Whether the cube can count these windows (``(t_lo, t_hi, offset)`` each): its offset, local
        midnight to local midnight."""
        return self.usable and all(off == self.offset_us and (lo + off) % tally.US_PER_DAY == 0
                                   and (hi + off) % tally.US_PER_DAY == 0 for lo, hi, off in windows)

    def slots_by_street(self) -> tuple[np.ndarray, np.ndarray]:
        """The slots of each block ordered by street (``slot_order``, ``street_lo`` of
        :func:`~citygrid.kernels.tally.order_slots_by_street`: 2 bytes a slot), so that a query of
        one street reads its slots only; the slots made since the last call are ordered first (under
        the mirror's lock). A slot's codes never change once it is made (an event that moves goes to
        another slot), so only the block that was last and the new ones are ordered again, and all
        of them when a street id outgrows the table."""
        n, street = self.n, self.codes[7]
        if n > self._ordered:
            first = self._ordered // BLOCK
            n_codes = int(street[first * BLOCK : n].max()) + 2
            if n_codes + 1 > self._street_lo.shape[1]:
                first, self._street_lo = 0, np.zeros((0, n_codes + 1), dtype=np.int16)
            n_blocks = -(-n // BLOCK)
            if len(self._street_lo) < n_blocks:  # room for a sixteenth more slots: grown rarely
                room = n_blocks + n_blocks // 16 + 1
                grown = np.zeros((room, self._street_lo.shape[1]), dtype=np.int16)
                grown[: len(self._street_lo)] = self._street_lo
                order = np.zeros(room * BLOCK, dtype=np.uint16)
                order[: len(self._slot_order)] = self._slot_order
                self._street_lo, self._slot_order = grown, order
            tally.order_slots_by_street(street, n, BLOCK, first, self._slot_order, self._street_lo)
            self._ordered = n
        return self._slot_order, self._street_lo

    # ------------------------------------------------------------------ upkeep (under the mirror's lock)

    def withdraw(self, rows: np.ndarray, mirror) -> None:
        """Take events out of their slots (before their columns change: their slots are found again
        from the columns they were put in with)."""
        if not self.usable or not len(rows):
            return
        self._add(rows, self.slots_of(rows, mirror), -1, mirror)

    def slots_of(self, rows: np.ndarray, mirror) -> np.ndarray:
        """The slots of events in the cube, by their columns as they were put in."""
        return self._slot_of_key.find(self._keys(rows, mirror))

    def deposit(self, rows: np.ndarray, mirror, slots: np.ndarray | None = None) -> None:
        """Put events (their columns as they are now) into their slots, made when new (``slots``: the
        slots :meth:`place` gave them already)."""
        if not self.usable or not len(rows):
            return
        if slots is None:
            slots = self.place(rows, mirror)
            if slots is None:
                return
        self._fit_counts(slots)
        self._add(rows, slots, 1, mirror)

    def place(self, rows: np.ndarray, mirror) -> np.ndarray | None:
        """The slots of events by the columns that place them (report time, category, worker, area
        chain) as they are now, made when new, without adding their measures (None: an id outgrew its
        bits, and the cube is no longer used). A rebuild places the events as it reads them, while the
        audit log is still read, and adds their measures once their lifecycle is known."""
        if not self.usable:
            return None
        codes = mirror.codes
        if codes.dtype.itemsize > self.codes.dtype.itemsize:  # the mirror's ids outgrew int16
            self.codes = self.codes.astype(codes.dtype)
        keys = self._keys(rows, mirror)
        if keys is None:
            self.usable = False
            return None
        slots, fresh = self._slot_of_key.number(keys)
        if len(fresh):
            self._add_slots(rows[fresh], keys[fresh], codes)
        return slots

    def trim(self) -> None:
        """Let go of the room beyond the slots (after a long catch-up placed them read by read); from
        then on the cube grows by :data:`GROWTH` again."""
        self.placing = False
        if self.capacity > self.n:
            self._allocate(self.n)

    def _fit_counts(self, slots: np.ndarray) -> None:
        """Widen the counts (int8, then int16, int32, int64) before events are added to ``slots`` (one
        entry per event) when a slot's "reported" would outgrow them: every count of a slot is at
        most its "reported" (an event adds 0 or 1 to each), so no count then wraps."""
        if not len(slots):
            return
        most = slot_kernels.most_reported(slots, self.counts, tally.M_REPORTED)
        while self.counts.dtype != np.int64 and most > np.iinfo(self.counts.dtype).max:
            self.counts = self.counts.astype(_WIDER[self.counts.dtype])

    def _add(self, rows: np.ndarray, slots: np.ndarray, sign: int, mirror) -> None:
        """Add ``sign`` times the measures of events (all but "overdue now": no time is before the
        first instant) into their slots (adding, :meth:`_fit_counts` has seen they fit)."""
        tally.tally_cells(rows, slots, mirror.codes, mirror.flags, mirror.open_rows,
                          mirror.open_due, mirror.close_us, mirror.stage_us, np.iinfo(np.int64).min, sign,
                          self.counts, self.sums)

    def _keys(self, rows, mirror):
        """The slot keys of events (:func:`~citygrid.kernels.slots.slot_keys`), their area chains not
        numbered yet numbered first (None when an id outgrew its bits)."""
        keys, chains = np.empty(len(rows), np.uint64), np.empty(len(rows), np.int64)
        places = self._place_of_chain
        while True:
            unnumbered = slot_kernels.slot_keys(rows, mirror.occurred, mirror.codes, self.offset_us, *places.tiers,
                                                keys, chains)
            if unnumbered == slot_kernels.OUTGROWN:
                return None
            if not unnumbered:
                return keys
            places.number(chains[:unnumbered])
            if places.count >= 1 << slot_kernels.PLACE_BITS:
                return None

    def _add_slots(self, rows, keys, codes) -> None:
        """New slots (numbered from :attr:`n` on) of the events ``rows`` and their keys, one a slot."""
        n_new = len(rows)
        if self.n + n_new > self.capacity:
            # Half again while a long catch-up (a rebuild) places its slots read by read (it trims
            # the room after); else a sixty-fourth.
            self._allocate(max(self.n + n_new, int(self.capacity * 1.5) + BLOCK) if self.placing
                           else room_for(self.n + n_new, self.capacity, 16 * BLOCK))
        slot_kernels.fill_slots(rows, keys, codes, _KEPT_ROWS, self.n, self.offset_us, self.day_us, self.codes)
        first_block = self.n // BLOCK
        self.n += n_new
        tally.block_ranges(self.day_us, self.n, BLOCK, self.block_lo, self.block_hi, first_block)


class Numbering:
    """Dense numbers (0, 1, …) of integer keys, found and given a batch of keys at a time with no
    Python step per key (:func:`~citygrid.kernels.slots.number_keys`): the keys are kept sorted in
    two tiers, a large one and a small one that takes each batch's new keys and is merged into the
    large one once it holds an eighth of it, so a batch costs about the small tier's size and the
    large one is rewritten rarely."""

    #: The small tier is merged into the large one at this size at least.
    SMALL = 1 << 16

    def __init__(self, dtype):
        self.count = 0
        self._dtype = np.dtype(dtype)
        self._keys = [np.empty(0, dtype=dtype), np.empty(0, dtype=dtype)]  # large, small
        self._numbers = [np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32)]  # fewer than 2**31 keys

    @property
    def tiers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The large tier's sorted keys and their numbers, then the small tier's."""
        return self._keys[0], self._numbers[0], self._keys[1], self._numbers[1]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The numbers of keys (any order, repeats allowed; -1: not seen before)."""
        numbers = np.empty(len(keys), dtype=np.int64)
        slot_kernels.number_keys(keys.astype(self._dtype, copy=False), *self.tiers, self.count, False, numbers)
        return numbers

    def number(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The numbers of keys (any order, repeats allowed), keys not seen before numbered next in
        key order; and for each new key in key order, the position in ``keys`` of one of its
        occurrences."""
        keys = keys.astype(self._dtype, copy=False)
        numbers = np.empty(len(keys), dtype=np.int64)
        fresh_keys, fresh = slot_kernels.number_keys(keys, *self.tiers, self.count, True, numbers)
        if len(fresh):
            fresh_numbers = np.arange(self.count, self.count + len(fresh), dtype=np.int32)
            if not self.count:  # the first batch (a rebuild): the large tier at once
                self._keys[0], self._numbers[0] = fresh_keys, fresh_numbers
            else:
                self._keys[1], self._numbers[1] = slot_kernels.merge_keys(self._keys[1], self._numbers[1],
                                                                          fresh_keys, fresh_numbers)
                if len(self._keys[1]) >= max(self.SMALL, len(self._keys[0]) // 8):
                    self._keys[0], self._numbers[0] = slot_kernels.merge_keys(*self.tiers)
                    self._keys[1], self._numbers[1] = self._keys[1][:0], self._numbers[1][:0]
            self.count += len(fresh)
        return numbers, fresh

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in self._keys + self._numbers)
