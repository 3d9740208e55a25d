"""The dispatch wing: who goes where.

Routing rules and the online and batch dispatcher (``dispatcher``), workers and their shifts
(``workers``), working time and the holiday calendar (``worktime``). Uses the layers wing and the shared
modules.
"""
