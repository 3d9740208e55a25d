"""The cases wing: reports become events and follow their lifecycle.

The event model and store (``events``), the intake (``intake``: submit with group commit, and the parts
it composes), the lifecycle rules (``lifecycle``), the category taxonomy (``taxonomy``) and the duplicate
index (``duplicates``). Uses the layers, dispatch and access wings and the shared modules.
"""
