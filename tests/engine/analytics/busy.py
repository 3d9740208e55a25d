"""Another thread holding a lock for a while (a query counting under the mirror's lock)."""

from __future__ import annotations

import threading
from contextlib import contextmanager


@contextmanager
def held_elsewhere(lock):
    """Another thread holds ``lock`` until the block ends (the committing thread then only hands
    its rows over, as when a query is counting)."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join()
