"""Detectors over count series: validation, options, one kernel call per chunk of series, results.

Every detector runs over a (series x time) matrix of counts at once (a grid x category x day cube
flattened to rows, say) and answers, per series and period, the expected count, the upper bound,
the method's statistic and the alarm. Periods before the first one a method can judge (its
``start``) hold NaN and no alarm.

=============  ======================================================================================
method         definition (and the R ``surveillance`` function it is checked against)
=============  ======================================================================================
``ears``       CDC EARS C1, C2, C3 (Hutwagner et al. 2003; Fricker, Hegler and Dunfee 2008); ``earsC``
``cusum``      Poisson CUSUM for a rise of size ``kappa`` (Lucas 1985; Hoehle and Paul 2008);
               ``glrpois`` with ``theta = kappa``
``glr``        Poisson GLR-CUSUM for a rise in the intercept (Hoehle and Paul 2008); ``glrpois``
``bayes``      Bayes predictive (negative binomial from a Poisson with Jeffreys' prior); ``algo.bayes``
``farrington`` Farrington flexible with Noufaily et al. (2013)'s improvements for series of at least
               ``b`` >= 3 years; ``farringtonFlexible``
=============  ======================================================================================

Where R and the published definition differ:

- EARS C3: R 1.20's ``earsC`` sets the bound to ``y_t + sigma_t (z - L)`` (``L`` the two earlier
  days' ``max(0, C2 - 1)``), so its alarm does not depend on the day's own count. The published C3
  (Fricker et al. 2008, the package's own documentation) is ``C3 = sum over t-2..t of
  max(0, C2 - 1)`` with an alarm when it exceeds z: that is the default here (``c3_rule =
  "published"``); ``c3_rule = "surveillance"`` reproduces R's numbers.
- Farrington's exceedance score: R compares the count with the prediction on the link scale
  (``log mu``) for the ``nbplugin`` and ``muan`` thresholds; this is kept (the alarm equals
  "count above the bound" whenever the bound exceeds ``log mu``). R reports no upper bound when the
  5-in-4 rule (``limit``) suppresses the alarm; here the bound is always reported.
- Farrington's dispersion after down-weighting: the published method (Farrington et al. 1996,
  eq. 3.6) estimates it from the reweighted fit, ``sum(w_i (y_i - mu_i)^2 / mu_i) / (n - p)`` with
  the working weights. R 1.20 overwrites the fit's weights with the down-weighting weights before
  summarising it, so the standard error of the prediction (``muan`` and ``delta`` bounds) and the
  trend's t-test use ``sum(omega_i ((y_i - mu_i) / mu_i)^2) / (n - p)`` instead (its ``phi``, the
  over-dispersion of the bound, is the published one). ``dispersion_rule = "published"`` is the
  default; ``"surveillance"`` reproduces R. Without reweighting, or with the Noufaily defaults
  (``nbplugin``, ``p_trend = 1``), both give the same answers.

The in-control mean of the CUSUM and GLR is either given (``expected``) or fitted per series, as
``glrpois`` does, by a Poisson GLM with harmonics (:class:`InControl`) on the first periods, which
are then not monitored. A sparse series (a grid x category series with a handful of events) cannot
carry that fit: with no event in its training periods the GLM's mean runs to ``exp(-25)``, and
the GLR, whose statistic for a single case is ``log(1 / mu) - 1``, sounds at every event that
follows (Hoehle and Paul 2008 estimate the in-control model from a long, well-populated
training period and note that the run length is sensitive to estimation error). Sparse series
therefore get a constant mean, the posterior mean ``(S + a) / (n + b)`` of their training count
``S`` over ``n`` periods under a gamma prior fitted by moments to all the sparse series of the
matrix (empirical Bayes; Jeffreys' ``a = 1/2, b = 0`` when there are too few to pool). With
``min_events_per_coefficient = 0`` every series is fitted as R fits it.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import norm

from citygrid.engine.alerts.budget import Budget
from citygrid.engine.errors import InvalidInput
from citygrid.kernels import detectors as kd
from citygrid.kernels import farrington as kf

METHODS = ("ears", "cusum", "glr", "bayes", "farrington")
#: In-control fit status of a sparse series given a pooled constant mean (the GLM's are
#: ``citygrid.kernels.glm.FIT_*``, 0 .. 3).
SPARSE_MEAN = -1
#: Series per kernel call (deadline and cancel are checked between calls).
CHUNK_SERIES = 8192
#: Farrington periods per kernel call.
CHUNK_TASKS = 4096


@dataclass(frozen=True)
class InControl:
    """How the CUSUM and GLR estimate the in-control mean when it is not given.

    A Poisson GLM ``1 (+ t) + sum_{s<=harmonics} cos(2 pi s t / period) + sin(2 pi s t / period)``
    on the first ``train`` periods of each series (default: the first half), predicted for the
    rest; ``period`` defaults to the series' periods per year.
    """

    train: int | None = None
    period: float | None = None
    harmonics: int = 1
    trend: bool = False
    #: Series with fewer training events than this per coefficient are sparse: they get a constant
    #: mean, the empirical-Bayes (gamma-Poisson) estimate pooled over the matrix's sparse series,
    #: instead of the GLM. 0 fits the GLM to every series, as R's ``glrpois`` does (see
    #: :func:`sparse_means`).
    min_events_per_coefficient: float = 10.0


@dataclass(frozen=True)
class EarsOptions:
    method: str = "C1"
    baseline: int = 7
    #: One-sided level of the bound; None: 0.001 for C1 and C2, 0.025 for C3 (the CDC's choices).
    alpha: float | None = None
    #: Floor of the baseline standard deviation (Burkom suggests 0.5 or 1 for sparse counts).
    min_sigma: float = 0.0
    #: ``"published"`` or ``"surveillance"`` (R 1.20's C3 formula; see the module docstring).
    c3_rule: str = "published"


@dataclass(frozen=True)
class CusumOptions:
    #: Log rate ratio of the rise to detect (log 2: a doubling).
    kappa: float = math.log(2.0)
    threshold: float = 5.0
    in_control: InControl = field(default_factory=InControl)


@dataclass(frozen=True)
class GlrOptions:
    threshold: float = 5.0
    in_control: InControl = field(default_factory=InControl)
    #: Compute the upper bound (the smallest count that would sound the alarm); costs a root-find.
    bound: bool = True


@dataclass(frozen=True)
class BayesOptions:
    b: int = 0
    w: int = 6
    act_y: bool = True
    alpha: float = 0.05


@dataclass(frozen=True)
class FarringtonOptions:
    """Defaults: Noufaily et al. (2013) as R's ``farringtonFlexible`` documents them."""

    b: int = 5
    w: int = 3
    #: Levels of the seasonal factor (1: Farrington's original comparable windows only).
    periods: int = 10
    #: Recent periods left out of the fit (None: w, as in Farrington 1996).
    past_excluded: int | None = 26
    reweight: bool = True
    weights_threshold: float = 2.58
    trend: bool = True
    p_trend: float = 1.0
    #: ``"nbplugin"`` (Noufaily), ``"muan"`` or ``"delta"`` (Farrington).
    threshold: str = "nbplugin"
    #: Power transformation of the delta threshold: ``"none"``, ``"1/2"`` or ``"2/3"``.
    power: str = "2/3"
    alpha: float = 0.05
    #: No alarm unless at least ``limit_cases`` were counted in the ``limit_periods`` periods up to now.
    limit_cases: int = 5
    limit_periods: int = 4
    #: ``"published"`` or ``"surveillance"`` (R 1.20's dispersion after reweighting; see the module docstring).
    dispersion_rule: str = "published"


OPTION_TYPES = {
    "ears": EarsOptions,
    "cusum": CusumOptions,
    "glr": GlrOptions,
    "bayes": BayesOptions,
    "farrington": FarringtonOptions,
}
STATISTIC_NAMES = {"ears": "c", "cusum": "cusum", "glr": "glr", "bayes": "p_value", "farrington": "score"}


class Detection:
    """A detector's answer over a (series x time) matrix; entries before ``start`` are NaN / False.

    ``expected``, ``upperbound``, ``statistic``, ``alarm`` and ``extra`` (method-specific arrays:
    Farrington's p_value, phi, trend; the in-control fit status ...) have one row per series. Series
    with identical answers (every series without a count) are computed once: the arrays given hold
    one row per distinct answer and ``rows[i]`` names series i's row (None: row i is series i).
    Each full array is spread from them when first read, so a caller that reads only the alarms
    does not pay for the rest.
    """

    _FIELDS = ("expected", "upperbound", "statistic", "alarm")

    def __init__(self, method: str, options, start: int, expected: np.ndarray, upperbound: np.ndarray,
                 statistic: np.ndarray, alarm: np.ndarray, extra: dict[str, np.ndarray] | None = None,
                 rows: np.ndarray | None = None):
        self.method = method
        self.options = options
        self.start = start
        self.rows = rows
        self._given = {"expected": expected, "upperbound": upperbound, "statistic": statistic, "alarm": alarm}
        self._given_extra = dict(extra or {})
        self._full: dict[str, object] = {}

    def _spread(self, a: np.ndarray) -> np.ndarray:
        if self.rows is None or a.ndim == 0:
            return a
        return a[self.rows]

    def _field(self, name: str) -> np.ndarray:
        full = self._full.get(name)
        if full is None:
            full = self._full[name] = self._spread(self._given[name])
        return full

    def take(self, name: str, rows) -> np.ndarray:
        """Rows ``rows`` of one output (``expected``, ``upperbound``, ``statistic`` or ``alarm``),
        without spreading the whole array (a run reads the figures of its alarmed series only)."""
        full = self._full.get(name)
        given = self._given[name] if full is None else full
        if full is not None or self.rows is None or given.ndim == 0:
            return given[rows] if given.ndim else given
        return given[self.rows[rows]]

    expected = property(lambda self: self._field("expected"))
    upperbound = property(lambda self: self._field("upperbound"))
    statistic = property(lambda self: self._field("statistic"))
    alarm = property(lambda self: self._field("alarm"))

    @property
    def extra(self) -> dict[str, np.ndarray]:
        full = self._full.get("extra")
        if full is None:
            full = self._full["extra"] = {k: self._spread(v) for k, v in self._given_extra.items()}
        return full

    @property
    def statistic_name(self) -> str:
        return STATISTIC_NAMES[self.method]

    @property
    def n_alarms(self) -> int:
        if self.rows is None:
            return int(self._given["alarm"].sum())
        per_row = self._given["alarm"].sum(axis=1)
        return int(np.bincount(self.rows, minlength=len(per_row)) @ per_row)

    def __repr__(self) -> str:
        n_series = len(self.rows) if self.rows is not None else self._given["alarm"].shape[0]
        return f"Detection({self.method!r}, start={self.start}, series={n_series}, alarms={self.n_alarms})"


def detect(method: str, counts, options=None, *, freq: int = 52, start: int | None = None,
           expected=None, deadline: float | None = None, cancel: threading.Event | None = None) -> Detection:
    """Run one detector over ``counts`` (series x time, or one series as a 1-D array).

    ``freq`` is the number of periods in a year (52 weekly, 365 daily, 12 monthly); ``start`` the first
    period to judge (default: the first one the method can); ``expected`` the in-control means for
    ``cusum`` and ``glr`` (same shape as counts; default: fitted, see :class:`InControl`).
    ``deadline`` (``time.monotonic()``) and ``cancel`` are checked between chunks of series.
    """
    if method not in METHODS:
        raise InvalidInput(f"unknown detector {method!r}; choose one of {', '.join(METHODS)}")
    if options is None:
        options = OPTION_TYPES[method]()
    elif not isinstance(options, OPTION_TYPES[method]):
        raise InvalidInput(f"{method} takes {OPTION_TYPES[method].__name__}, got {type(options).__name__}")
    c = counts if isinstance(counts, CheckedCounts) else CheckedCounts(counts)
    freq = _positive_int(freq, "freq")
    budget = Budget(deadline, cancel)
    # Series without a single count all get the same answer: compute it once (with the others).
    if expected is not None or c.rows is None:
        return _run(method, c.values, options, freq, start, expected, budget, np.ones(len(c.values)))
    part = _run(method, c.distinct, options, freq, start, None, budget, c.weights)
    part.rows = c.rows
    return part


class CheckedCounts:
    """Counts checked once for several detectors (``detect(method, CheckedCounts(m))`` per method):
    ``values`` is :func:`as_counts`; ``distinct`` the series with a count and one empty series (all
    the empty ones share its answer), ``weights`` how many series each of its rows stands for and
    ``rows`` each series' row in it (None when fewer than two series are empty: ``distinct`` is
    ``values`` then). A bare matrix passed to :func:`detect` is checked and gathered on every call.
    """

    def __init__(self, counts):
        self.values, nonempty = _checked_counts(counts)
        empty = ~nonempty
        self.rows = self.weights = None
        self._keep = None
        if empty.sum() >= 2:
            keep = nonempty.copy()
            keep[np.flatnonzero(empty)[0]] = True
            self._keep = keep
            self.weights = _multiplicity(keep, empty)
            self.rows = _rows_of(keep, empty)

    @functools.cached_property
    def distinct(self) -> np.ndarray:
        return self.values if self._keep is None else np.ascontiguousarray(self.values[self._keep])


def _multiplicity(keep: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """How many rows each kept row stands for (the first empty one: every empty one)."""
    weights = np.ones(int(keep.sum()))
    weights[(np.cumsum(keep) - 1)[np.flatnonzero(empty)[0]]] = empty.sum()
    return weights


def _rows_of(keep: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """For each row, its row among the kept ones (an empty row: the first empty one's)."""
    rows = np.cumsum(keep) - 1
    return np.where(keep, rows, rows[np.flatnonzero(empty)[0]])


def _run(method, y, options, freq, start, expected, budget, weights) -> Detection:
    if method == "ears":
        return _ears(y, options, start, budget)
    if method == "bayes":
        return _bayes(y, options, freq, start, budget)
    if method == "farrington":
        return _farrington(y, options, freq, start, budget)
    return _sequential(method, y, options, freq, start, expected, budget, weights)


def in_control_means(counts, in_control: InControl | None = None, *, freq: int = 52) -> np.ndarray:
    """The in-control means the CUSUM and GLR would fit (pass them as ``expected`` to run both on one fit).

    Periods before ``train`` hold the fitted values too; NaN for a series whose fit failed.
    """
    c = counts if isinstance(counts, CheckedCounts) else CheckedCounts(counts)
    ic = in_control or InControl()
    freq = _positive_int(freq, "freq")
    if c.rows is None:
        return _fit_in_control(c.values, ic, freq, Budget(), np.ones(len(c.values)))[0]
    return _fit_in_control(c.distinct, ic, freq, Budget(), c.weights)[0][c.rows]


def as_counts(counts) -> np.ndarray:
    """Counts as a C-ordered float64 (series x time) matrix; InvalidInput unless finite whole numbers >= 0."""
    return _checked_counts(counts)[0]


def _checked_counts(counts) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`as_counts`, whether each series has a count above 0), in one pass over the counts."""
    try:
        y = np.asarray(counts, dtype=np.float64)  # no copy of a float64 matrix: nothing writes to it
    except (TypeError, ValueError):
        raise InvalidInput("counts must be numbers") from None
    if y.ndim == 0:
        y = y.reshape(1)
    if y.ndim == 1:
        y = y.reshape(1, -1)
    if y.ndim != 2:
        raise InvalidInput(f"counts must be a series x time matrix, got {y.ndim} dimensions")
    y = np.ascontiguousarray(y)
    first_bad = np.empty(y.shape[0], dtype=np.int64)
    nonempty = np.empty(y.shape[0], dtype=np.bool_)
    kd.check_counts(y, first_bad, nonempty)
    bad = np.flatnonzero(first_bad >= 0)
    if len(bad):
        s, t = int(bad[0]), int(first_bad[bad[0]])
        raise InvalidInput(f"counts must be whole numbers >= 0; series {s}, period {t} holds {float(y[s, t])!r}")
    return y, nonempty


# ---------------------------------------------------------------------------------------- methods


def _ears(y: np.ndarray, o: EarsOptions, start: int | None, budget) -> Detection:
    methods = {"C1": kd.EARS_C1, "C2": kd.EARS_C2, "C3": kd.EARS_C3}
    name = str(o.method).upper()
    if name not in methods:
        raise InvalidInput(f"EARS method must be C1, C2 or C3, got {o.method!r}")
    baseline = _positive_int(o.baseline, "baseline")
    if baseline < 3:
        raise InvalidInput(f"the EARS baseline must be at least 3 periods, got {baseline}")
    alpha = o.alpha if o.alpha is not None else (0.025 if name == "C3" else 0.001)
    _probability(alpha, "alpha")
    min_sigma = _non_negative(o.min_sigma, "min_sigma")
    rules = {"published": kd.C3_PUBLISHED, "surveillance": kd.C3_SURVEILLANCE}
    if o.c3_rule not in rules:
        raise InvalidInput(f"c3_rule must be 'published' or 'surveillance', got {o.c3_rule!r}")
    first = baseline + {"C1": 0, "C2": 2, "C3": 4}[name]
    start = _start(start, first, y.shape[1], f"EARS {name} with a baseline of {baseline}")
    out = _outputs(y.shape)
    z = _upper_quantile(alpha)
    for lo, hi in budget.chunks(y.shape[0], CHUNK_SERIES, "series"):
        kd.detect_ears(y[lo:hi], methods[name], baseline, z, min_sigma, rules[o.c3_rule], start,
                       out["expected"][lo:hi], out["upperbound"][lo:hi], out["statistic"][lo:hi],
                       out["alarm"][lo:hi])
    return _detection("ears", replace(o, method=name, alpha=alpha), start, out)


def _bayes(y: np.ndarray, o: BayesOptions, freq: int, start: int | None, budget) -> Detection:
    b = _non_negative_int(o.b, "b")
    w = _non_negative_int(o.w, "w")
    _probability(o.alpha, "alpha")
    if not o.act_y and b == 0:
        raise InvalidInput("the Bayes method needs reference values: use act_y or b >= 1")
    if o.act_y and w == 0 and b == 0:
        raise InvalidInput("the Bayes method needs reference values: w must be at least 1")
    first = max(b * freq + w, w if o.act_y else 0)
    start = _start(start, first, y.shape[1], f"the Bayes method with b={b}, w={w}")
    out = _outputs(y.shape)
    for lo, hi in budget.chunks(y.shape[0], CHUNK_SERIES, "series"):
        kd.detect_bayes(y[lo:hi], b, w, bool(o.act_y), freq, float(o.alpha), start,
                        out["expected"][lo:hi], out["upperbound"][lo:hi], out["statistic"][lo:hi],
                        out["alarm"][lo:hi])
    return _detection("bayes", o, start, out)


def _sequential(method: str, y: np.ndarray, o, freq: int, start: int | None, expected, budget,
                weights) -> Detection:
    threshold = float(o.threshold)
    if not (math.isfinite(threshold) and threshold > 0):
        raise InvalidInput(f"the threshold must be a positive number, got {o.threshold!r}")
    kappa = float(o.kappa) if method == "cusum" else 1.0
    if not (math.isfinite(kappa) and kappa > 0):
        raise InvalidInput(f"kappa (the log rate ratio to detect) must be positive, got {o.kappa!r}")
    extra: dict[str, np.ndarray] = {}
    if expected is None:
        mu0, status, first = _fit_in_control(y, o.in_control, freq, budget, weights)
        extra["fit_status"] = status
    else:
        mu0 = np.array(expected, dtype=np.float64, order="C", ndmin=2)
        if mu0.shape != y.shape:
            raise InvalidInput(f"expected has shape {mu0.shape}; the counts have {y.shape}")
        bad = ~(np.isfinite(mu0) & (mu0 > 0))
        if bad.any():
            s, t = np.argwhere(bad)[0]
            raise InvalidInput(f"expected counts must be positive; series {s}, period {t} holds {float(mu0[s, t])!r}")
        first = 0
    start = _start(start, first, y.shape[1], f"the {method.upper()} detector")
    out = _outputs(y.shape)
    with_bound = method == "cusum" or bool(o.bound)
    for lo, hi in budget.chunks(y.shape[0], CHUNK_SERIES, "series"):
        if method == "cusum":
            kd.detect_cusum(y[lo:hi], mu0[lo:hi], kappa, threshold, start, out["statistic"][lo:hi],
                            out["upperbound"][lo:hi], out["alarm"][lo:hi])
        else:
            kd.detect_glr(y[lo:hi], mu0[lo:hi], threshold, start, with_bound, out["statistic"][lo:hi],
                          out["upperbound"][lo:hi], out["alarm"][lo:hi])
    # mu0 is this call's own (fitted, or the copy of the given means): it becomes the expected counts
    mu0[:, :start] = np.nan
    out["expected"] = mu0
    return _detection(method, o, start, out, extra)


def _fit_in_control(y: np.ndarray, ic: InControl, freq: int, budget, weights) -> tuple[np.ndarray, np.ndarray, int]:
    """(means, fit status per series, periods used) of the in-control model of each series: the
    Poisson GLM, or for sparse series the pooled constant (status SPARSE_MEAN); ``weights[i]``
    is how many series row i stands for."""
    n_train = y.shape[1] // 2 if ic.train is None else _positive_int(ic.train, "train")
    if n_train >= y.shape[1]:
        raise InvalidInput(f"the in-control fit uses {n_train} periods, leaving none of the "
                           f"{y.shape[1]} to monitor")
    harmonics = _non_negative_int(ic.harmonics, "harmonics")
    period = float(freq if ic.period is None else ic.period)
    if not (math.isfinite(period) and period > 0):
        raise InvalidInput(f"the harmonic period must be positive, got {ic.period!r}")
    n_coef = 1 + int(bool(ic.trend)) + 2 * harmonics
    if n_train < n_coef + 1:
        raise InvalidInput(f"the in-control fit has {n_coef} coefficients and needs more than "
                           f"{n_coef} training periods, got {n_train}")
    min_events = _non_negative(ic.min_events_per_coefficient, "min_events_per_coefficient")
    mu0 = np.empty_like(y)
    status = np.empty(y.shape[0], dtype=np.int64)
    trained = y[:, :n_train].sum(axis=1)
    sparse = trained < min_events * n_coef
    if sparse.any():
        mu0[sparse] = sparse_means(trained[sparse], n_train, weights[sparse])[:, None]
        status[sparse] = SPARSE_MEAN
    dense = np.flatnonzero(~sparse)
    if len(dense) == y.shape[0]:
        for lo, hi in budget.chunks(y.shape[0], CHUNK_SERIES, "series"):
            kd.fit_seasonal_means(y[lo:hi], n_train, period, harmonics, bool(ic.trend), mu0[lo:hi], status[lo:hi])
    elif len(dense):
        fitted = np.empty((len(dense), y.shape[1]))
        fit_status = np.empty(len(dense), dtype=np.int64)
        part = np.ascontiguousarray(y[dense])
        for lo, hi in budget.chunks(len(dense), CHUNK_SERIES, "series"):
            kd.fit_seasonal_means(part[lo:hi], n_train, period, harmonics, bool(ic.trend), fitted[lo:hi],
                                  fit_status[lo:hi])
        mu0[dense] = fitted
        status[dense] = fit_status
    return mu0, status, n_train


def sparse_means(trained: np.ndarray, n_train: int, weights=None) -> np.ndarray:
    """Constant in-control means of sparse series from their training counts over ``n_train`` periods.

    Posterior means ``(S + a) / (n + b)`` under a gamma(a, b) prior on the rate, fitted by moments
    to the series themselves (``weights``: how many series each count stands for): the rates' mean
    ``m`` is the pooled rate and their variance ``v = (var(S) - n m) / n^2`` the counts' variance
    beyond Poisson's, so ``b = m / v`` and ``a = m b``. Without such excess variance the series
    share the pooled rate; with fewer than two series, or no event in any, Jeffreys' prior
    (``a = 1/2, b = 0``) alone.
    """
    s = np.asarray(trained, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    n = float(n_train)
    total = w.sum()
    mean_count = float((w * s).sum() / total) if total > 0 else 0.0
    if total < 2 or mean_count <= 0:
        return (s + 0.5) / n
    var_count = float((w * (s - mean_count) ** 2).sum() / (total - 1))
    m = mean_count / n
    v = (var_count - n * m) / n ** 2
    if v <= 0:
        return np.full_like(s, m)
    b = m / v
    return (s + m * b) / (n + b)


def _farrington(y: np.ndarray, o: FarringtonOptions, freq: int, start: int | None, budget) -> Detection:
    thresholds = {"delta": kf.THRESHOLD_DELTA, "nbplugin": kf.THRESHOLD_NBPLUGIN, "muan": kf.THRESHOLD_MUAN}
    powers = {"none": kf.POWER_NONE, "1/2": kf.POWER_HALF, "2/3": kf.POWER_TWO_THIRDS}
    method = str(o.threshold).lower()
    if method not in thresholds:
        raise InvalidInput(f"threshold must be one of {', '.join(thresholds)}, got {o.threshold!r}")
    rules = {"published": kf.DISPERSION_PUBLISHED, "surveillance": kf.DISPERSION_SURVEILLANCE}
    if o.dispersion_rule not in rules:
        raise InvalidInput(f"dispersion_rule must be 'published' or 'surveillance', got {o.dispersion_rule!r}")
    if o.power not in powers:
        raise InvalidInput(f"power must be one of {', '.join(powers)}, got {o.power!r}")
    b = _positive_int(o.b, "b")
    w = _non_negative_int(o.w, "w")
    periods = _positive_int(o.periods, "periods")
    past = w if o.past_excluded is None else _non_negative_int(o.past_excluded, "past_excluded")
    _probability(o.alpha, "alpha")
    limit_cases = _non_negative_int(o.limit_cases, "limit_cases")
    limit_periods = _positive_int(o.limit_periods, "limit_periods")
    if 2 * w + 1 > freq:
        raise InvalidInput(f"the window 2w+1 = {2 * w + 1} is longer than a year of {freq} periods")
    if periods > 1 and freq - 2 * w - 1 < periods - 1:
        raise InvalidInput(f"{periods} seasonal levels need at least {periods - 1} periods between the "
                           f"windows; a year of {freq} with w={w} leaves {freq - 2 * w - 1}")
    if past >= freq - w:
        raise InvalidInput(f"past_excluded={past} would leave out last year's window (freq={freq}, w={w})")
    first = max(b * freq + w, limit_periods - 1)
    start = _start(start, first, y.shape[1], f"Farrington with b={b} years of {freq} periods, w={w}")
    z = _upper_quantile(o.alpha)
    n_series, n_time = y.shape
    task_series = np.repeat(np.arange(n_series, dtype=np.int64), n_time - start)
    task_time = np.tile(np.arange(start, n_time, dtype=np.int64), n_series)
    n_tasks = len(task_series)
    flat = {name: np.empty(n_tasks) for name in ("expected", "upperbound", "statistic", "p_value", "phi")}
    trend = np.empty(n_tasks, dtype=np.uint8)
    alarm = np.empty(n_tasks, dtype=np.uint8)
    status = np.empty(n_tasks, dtype=np.uint8)
    for lo, hi in budget.chunks(n_tasks, CHUNK_TASKS, "series-periods"):
        kf.detect_farrington(
            y, task_series[lo:hi], task_time[lo:hi],
            b, w, freq, periods, past,
            bool(o.reweight), float(o.weights_threshold), bool(o.trend), float(o.p_trend),
            thresholds[method], powers[o.power], z, float(o.alpha), rules[o.dispersion_rule],
            float(limit_cases), limit_periods,
            flat["expected"][lo:hi], flat["upperbound"][lo:hi], flat["statistic"][lo:hi],
            flat["p_value"][lo:hi], flat["phi"][lo:hi], trend[lo:hi], alarm[lo:hi], status[lo:hi],
        )
    out = _outputs(y.shape)
    for a in out.values():
        a[:, :start] = 0 if a.dtype == np.uint8 else np.nan
    extra = {"p_value": np.full(y.shape, np.nan), "phi": np.full(y.shape, np.nan),
             "trend": np.zeros(y.shape, dtype=bool), "fitted": np.zeros(y.shape, dtype=bool)}
    for name in ("expected", "upperbound", "statistic"):
        out[name][:, start:] = flat[name].reshape(n_series, -1)
    out["alarm"][:, start:] = alarm.reshape(n_series, -1)
    extra["p_value"][:, start:] = flat["p_value"].reshape(n_series, -1)
    extra["phi"][:, start:] = flat["phi"].reshape(n_series, -1)
    extra["trend"][:, start:] = trend.reshape(n_series, -1) == 1
    extra["fitted"][:, start:] = status.reshape(n_series, -1) == kf.STATUS_OK
    return _detection("farrington", replace(o, threshold=method, past_excluded=past), start, out, extra)


# ---------------------------------------------------------------------------------------- helpers


def _outputs(shape) -> dict[str, np.ndarray]:
    """Output matrices, not written: the kernels write every entry (NaN / no alarm before ``start``)
    from their parallel threads, and a serial fill here would first-touch every page instead."""
    out = {name: np.empty(shape) for name in ("expected", "upperbound", "statistic")}
    out["alarm"] = np.empty(shape, dtype=np.uint8)
    return out


def _detection(method: str, options, start: int, out, extra=None) -> Detection:
    # the kernels write 0 / 1: the bytes are booleans already
    return Detection(method=method, options=options, start=start, expected=out["expected"],
                     upperbound=out["upperbound"], statistic=out["statistic"],
                     alarm=out["alarm"].view(np.bool_), extra=extra or {})


@functools.lru_cache(maxsize=64)
def _upper_quantile(alpha: float) -> float:
    """The standard normal's (1 - alpha) quantile (scipy's call costs milliseconds; runs repeat a few alphas)."""
    return float(norm.ppf(1.0 - alpha))


def _start(start: int | None, first: int, n_time: int, what: str) -> int:
    if start is None:
        start = first
    else:
        start = _non_negative_int(start, "start")
        if start < first:
            raise InvalidInput(f"{what} can judge period {first} onwards (0-based), not {start}")
    if start >= n_time:
        raise InvalidInput(f"{what} needs more than {first} periods of history; the series have {n_time}")
    return start


def _positive_int(value, name: str) -> int:
    v = _non_negative_int(value, name)
    if v < 1:
        raise InvalidInput(f"{name} must be at least 1, got {value!r}")
    return v


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInput(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def _non_negative(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise InvalidInput(f"{name} must be a number >= 0, got {value!r}")
    return v


def _probability(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if not (0.0 < v < 1.0):
        raise InvalidInput(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v
