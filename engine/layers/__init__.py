"""The layers wing: grid layers and everything that reads them.

A layer (``layer``) is read from a file (``sources``), validated (``validation``), saved as an immutable
version (``snapshots``) with its point-location index and H3 cover (``index``), recorded and activated in
the registry (``registry``); points are located in it (``coordinates``, ``assignment``); neighbours are
derived from it (``adjacency``); ``plots`` draws a validation report. Uses only the engine's shared
modules and the kernels.
"""
