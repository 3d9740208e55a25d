"""The HTTP/JSON gateway and the map page (一张图), beside the gRPC servicers, in the same process.

- :mod:`.gateway`: the ASGI app and the uvicorn thread that serves it; auth, limits, problem bodies;
- :mod:`.endpoints`: the read endpoints, each a call into the same engine objects the servicers use;
- :mod:`.openapi`: the OpenAPI document (``/openapi.json``), written from the endpoints' table;
- ``page/``: the map page (``/``) and MapLibre GL JS, vendored from npm with its licence.
"""
