"""Fixtures shared by the engine's wings: this folder holds ``intake_world`` (a small district with an
intake), which the cases and dispatch tests import; pytest puts this folder on the import path because
this conftest sits here."""
