"""The two JIT decorators every kernel uses, and the threading layer they run on.

``njit`` compiles a serial, GIL-free kernel; ``pnjit`` a parallel one (``numba.prange``). Both cache
their machine code next to the source (``cache=True``); when that folder is read-only (an installed
package) Numba falls back to its per-user cache directory or compiles in memory, so nothing breaks.

Parallel kernels are launched from several server threads at once. Numba's default ``workqueue``
layer aborts the process on concurrent launches, so this module selects a thread-safe layer before the
first parallel kernel compiles: Intel TBB (the ``tbb`` wheel), else OpenMP. The ``tbb`` wheel puts
``libtbb.so.12`` in ``<prefix>/lib``, which the dynamic loader does not search, so it is loaded here
by its full path first; Numba's TBB pool then finds it already in the process. An explicit
``NUMBA_THREADING_LAYER`` in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numba

#: Layers Numba may choose: "threadsafe" means TBB if it loads, else OpenMP (never workqueue).
THREADING_LAYER = "threadsafe"


def _preload_tbb() -> None:
    """Load the TBB runtime from the environment's ``lib`` folder when the loader cannot see it."""
    if sys.platform != "linux":
        return
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


_preload_tbb()
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = THREADING_LAYER

njit = numba.njit(nogil=True, cache=True)
pnjit = numba.njit(nogil=True, cache=True, parallel=True)
