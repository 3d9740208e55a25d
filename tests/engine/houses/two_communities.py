"""The two communities of 平湖街道 the houses tests cut from the demo district (a module of its own,
so tests import it by a unique name instead of ``conftest``, which names a different file in each
test folder)."""

COMMUNITIES = ("440307001001", "440307001002")
