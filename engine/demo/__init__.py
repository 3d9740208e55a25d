"""The embedded demo district: a synthetic Longgang (龙岗区) inside its real outline.

>>> from citygrid.engine.demo import generate_demo  # doctest: +SKIP
>>> summary = generate_demo("demo-out", seed=20261130)  # doctest: +SKIP
>>> print("\\n".join(summary.lines()))  # doctest: +SKIP
"""

from .generator import DemoSummary, generate_demo

__all__ = ["DemoSummary", "generate_demo"]
