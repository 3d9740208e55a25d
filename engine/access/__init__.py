"""The access wing: who may do what, where.

Principals and roles (``principals``), jurisdiction areas (``jurisdiction``) and API tokens
(``tokens``). Uses the layers wing (areas are grid codes) and the shared modules.
"""
