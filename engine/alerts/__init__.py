"""The alerts wing: detectors over count series and space-time scans.

- :mod:`~citygrid.engine.alerts.detectors`: EARS C1/C2/C3, Poisson CUSUM, Poisson GLR-CUSUM, the
  Bayes predictive method and Farrington flexible over a (series x time) count matrix;
- :mod:`~citygrid.engine.alerts.scan`: the prospective space-time permutation scan and the
  expectation-based Poisson scan;
- :mod:`~citygrid.engine.alerts.series`: reading series, cases, counts, baselines and locations
  from CSV files into arrays.
"""
