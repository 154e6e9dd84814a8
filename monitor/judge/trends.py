"""Latency trends: spot a sustained regression or a slow creep in one series of samples.

A series is one latency (a site's or an origin's phase, e.g. time to first byte) sampled
once per check. ``update`` takes the series' state, one sample and the sample's time, and
returns the new state and a signal; it reads no clock, does no I/O and does the same work
for every sample, however long the series.

The method, in log space (latency is multiplicative: "twice as slow" is one step at any
level), with ``y = log(latency)`` and the latency held to [0.1 ms, 10^6 s] so zero and
absurd values stay finite:

- **Baseline.** An exponentially weighted mean and variance of ``y``, weighted by elapsed
  time: a sample ``dt`` seconds after the previous one gets ``1 - 2**(-dt / half_life)``,
  or ``1/n`` (n samples so far) if that is more, so a young baseline is the plain mean of
  everything seen. The baseline's typical latency is
  ``exp(mean)``, the geometric mean. While a sample is anomalous or a regression is in
  force the weight is a quarter: a regression is not learned as normal in minutes, yet a
  permanent change is: a doubling after about three half-lives, a tripling after about six.
  A sample moves the variance at most as much as a 3-sigma one would, so one wild sample
  does not blind the detector for days.
- **Score.** ``z = (y - mean) / max(sd, 0.05)`` against the baseline before the sample; the
  floor (about 5 %) keeps a very steady series from making tiny changes look huge.
- **High sample:** at least ``min_factor`` times the baseline *and* at least ``min_delta``
  seconds slower than it. The absolute floor keeps a fast, jittery series (5 ms going to
  8 ms on a busy host) from ever counting as slower: a change nobody would notice is not
  worth an alert, however many times the baseline it is.
- **Anomalous sample:** high, and ``z >= 3``.
- **CUSUM.** Two-sided, on ``z`` with slack 0.5, each step limited to +-1.5 and each side
  capped at its alarm level 8; the up side takes a sample that is not high (under
  ``min_factor`` or ``min_delta``) as no rise at all. The limit means no burst, however
  extreme, alarms sooner than six samples, so single spikes are the k-of-n rule's business;
  the CUSUM catches a sustained shift that a noisy series never shows as ``z >= 3``. The
  cap means a long shift is forgotten as quickly as a short one.
- **Regression** (never during the first ``warmup`` samples, whose anomalies and CUSUM are
  not counted): ``anomalous`` of the last ``window`` samples anomalous, or the up side of
  the CUSUM alarming while at least half the last ``window`` samples are high. That second
  condition asks for ``min_factor`` and ``min_delta`` too (the same rule), because a
  shift that is real but small (a busy hour 20 % slower) is not worth an alert; and it
  counts high samples rather than the fast average because one spike on top of a
  slightly slower series would lift the average over the line. A regression also holds
  only while the recent level (below) is high by the same rule, so it is never "slower
  than usual" at 1.0x: it clears as soon as that level is back, or after ``recovery``
  samples in a row that are not high (a huge step keeps the level up longer); then the up
  side and the flags start again from nothing, so a new regression needs new evidence and
  a spike after it cannot bring it back.
- **Level.** ``ratio`` is a fast EWMA of ``y`` (weight 1/3, about five samples) over the
  baseline; the recent level is ``baseline * ratio``. p50 and p95 are nearest-rank
  percentiles of the last 64 latencies.
- **Slope and forecast.** An exponentially weighted linear regression of ``y`` on time
  (weight 1/6 per sample, about the last six samples), kept as centred moments so large
  timestamps lose no precision. Fitting ``log`` latency makes a creep of a steady
  percentage per sample a straight line, so its forecast is right rather than much too
  late; for a creep that is linear in seconds the forecast comes early, the safe side.
  ``slope`` is the fitted curve's gradient now, in seconds per second, and ``eta`` the time
  until the fitted curve reaches ``limit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

RING = 64  # latencies kept for p50 and p95
_FLOOR, _CEILING = 1e-4, 1e6  # seconds: the latencies the logs are taken of
_SD_FLOOR = 0.05
_Z_ANOMALOUS = 3.0
_VARIANCE_CLIP = 3.0  # in standard deviations
_SLOW = 0.25  # the baseline's weight while anomalous or regressed
_CUSUM_SLACK = 0.5
_CUSUM_STEP = 1.5
_CUSUM_ALARM = 8.0
_FAST = 1 / 3
_FIT = 1 / 6


@dataclass(frozen=True, slots=True)
class TrendSettings:
    """How one monitor's latency series are judged."""

    enabled: bool = True
    phases: tuple[str, ...] = ("processing",)  # which phases are tracked (the caller's choice)
    baseline: float = 86400.0  # seconds: the baseline's half-life
    warmup: int = 30  # samples before any verdict
    min_factor: float = 1.5  # no regression under this many times the baseline ...
    min_delta: float = 0.05  # ... nor under this many seconds slower than it
    anomalous: int = 5  # this many ...
    window: int = 8  # ... of the last this many samples anomalous: a regression
    recovery: int = 5  # samples in a row not high clear a regression (or its level back)
    limit: float | None = None  # seconds: what the forecast counts down to

    def __post_init__(self) -> None:
        checks = (
            (self.baseline > 0, "baseline must be positive"),
            (self.warmup >= 0, "warmup must not be negative"),
            (self.min_factor > 1, "min_factor must be more than 1"),
            (self.min_delta >= 0, "min_delta must not be negative"),
            (1 <= self.anomalous <= self.window, "anomalous must be from 1 to window"),
            (self.recovery >= 1, "recovery must be at least 1"),
            (self.limit is None or self.limit > 0, "limit must be positive"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"trend settings: {message}")


@dataclass(frozen=True, slots=True)
class TrendState:
    """Everything one series needs to continue; plain numbers, so it survives a restart."""

    count: int  # samples seen
    last: float  # the previous sample's time, POSIX seconds
    mean: float  # baseline: EW mean of log latency
    var: float  # baseline: EW variance of log latency
    fast: float  # fast EWMA of log latency
    up: float  # CUSUM, up side
    down: float  # CUSUM, down side
    anomalies: int  # bit i set: the sample i before the newest was anomalous
    highs: int  # bit i set: the sample i before the newest was high (factor and delta)
    regressed: bool
    fit_t: float  # the regression's EW moments: mean time (POSIX seconds), mean log latency,
    fit_y: float  # variance of time and covariance of time and log latency
    fit_tt: float
    fit_ty: float
    recent: tuple[float, ...]  # the last RING latencies, oldest first

    def to_json(self) -> dict[str, object]:
        """The state as JSON types (``from_json`` reads it back exactly)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> TrendState:
        """The state ``to_json`` wrote; ValueError for anything else."""
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"trend state: expected keys {sorted(names)}, got {sorted(data)}")
        return cls(
            count=_read_int(data, "count"),
            last=_read_float(data, "last"),
            mean=_read_float(data, "mean"),
            var=_read_float(data, "var"),
            fast=_read_float(data, "fast"),
            up=_read_float(data, "up"),
            down=_read_float(data, "down"),
            anomalies=_read_int(data, "anomalies"),
            highs=_read_int(data, "highs"),
            regressed=_read_bool(data, "regressed"),
            fit_t=_read_float(data, "fit_t"),
            fit_y=_read_float(data, "fit_y"),
            fit_tt=_read_float(data, "fit_tt"),
            fit_ty=_read_float(data, "fit_ty"),
            recent=_read_floats(data, "recent"),
        )


@dataclass(frozen=True, slots=True)
class TrendSignal:
    """What one sample says about its series."""

    regressed: bool  # a sustained regression is in force: the recent level is high
    warming_up: bool  # within the first `warmup` samples: never regressed then
    value: float  # this sample, seconds
    baseline: float  # seconds: the baseline's typical latency (its geometric mean)
    ratio: float  # the recent level (fast EWMA, ~5 samples) over the baseline
    p50: float | None  # of the last RING latencies
    p95: float | None
    slope: float  # seconds of latency gained per second now; 0 when unknown
    eta: float | None  # seconds until the fitted latency reaches `limit`, if it is rising
    cusum_shift: str  # "up", "down" or "": which side of the CUSUM is alarming


def update(
    state: TrendState | None, value: float, now: datetime, settings: TrendSettings
) -> tuple[TrendState, TrendSignal]:
    """The series after one more sample (``state`` None starts one), and what it says.

    ``value`` is a latency in seconds, ``now`` a time zone aware datetime; ValueError for
    a negative or non-finite value or a naive time. Times that go backwards count as no
    time passed.
    """
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a latency must be a finite number of seconds, not {value!r}")
    if now.tzinfo is None:
        raise ValueError("trend samples need a time zone aware time")
    t, y = now.timestamp(), math.log(_clamp(value, _FLOOR, _CEILING))
    old = state or _first(y, t)
    judged = old.count >= settings.warmup
    z = (y - old.mean) / _sd(old.var)
    slower = _high(y, old.mean, settings)  # decided once, for the count and the CUSUM
    high = judged and slower
    anomalous = high and z >= _Z_ANOMALOUS
    mean, var = _baseline(old, y, t, settings, slow=anomalous or old.regressed)
    # The up side obeys the factor and the floor too: a sample that is not high is no
    # evidence of a regression, however many deviations it is.
    rising = z if slower else min(z, 0.0)
    up, down = _cusum(old.up, old.down, rising, z) if judged else (0.0, 0.0)
    bits = (1 << max(settings.window, settings.recovery)) - 1
    anomalies = (old.anomalies << 1 | anomalous) & bits
    highs = (old.highs << 1 | high) & bits
    fast = old.fast + _FAST * (y - old.fast)
    # Only while the recent level itself is high (the same rule) is it "slower than usual".
    regressed = (
        judged
        and _high(fast, mean, settings)
        and _regressed(old.regressed, anomalies, highs, up, settings)
    )
    if old.regressed and not regressed:  # cleared: new evidence for the next one
        up, anomalies, highs = 0.0, 0, 0
    new = TrendState(
        old.count + 1,
        t,
        mean,
        var,
        fast,
        up,
        down,
        anomalies,
        highs,
        regressed,
        *_fit(old, y, t),
        (*old.recent, value)[-RING:],
    )
    return new, _signal(new, value, not judged, settings)


def _high(y: float, mean: float, settings: TrendSettings) -> bool:
    """Whether log latency ``y`` is slower than the baseline by both the factor and the
    absolute floor: the one rule the k-of-n count, the CUSUM, recovery and the recent
    level of a regression all use."""
    baseline = math.exp(mean)
    return y - mean >= math.log(settings.min_factor) and (
        math.exp(y) - baseline >= settings.min_delta
    )


def _first(y: float, t: float) -> TrendState:
    """A series that has seen nothing yet, centred on its first sample."""
    return TrendState(0, t, y, 0.0, y, 0.0, 0.0, 0, 0, False, t, y, 0.0, 0.0, ())


def _sd(var: float) -> float:
    return max(math.sqrt(var), _SD_FLOOR)


def _baseline(
    old: TrendState, y: float, t: float, settings: TrendSettings, *, slow: bool
) -> tuple[float, float]:
    """The baseline's mean and variance after ``y``, weighted by the time since the last."""
    elapsed = max(t - old.last, 0.0)
    weight = max(1 - 2 ** (-elapsed / settings.baseline), 1 / (old.count + 1))
    if slow:
        weight *= _SLOW
    step = y - old.mean
    spread = min(step * step, (_VARIANCE_CLIP * _sd(old.var)) ** 2)
    return old.mean + weight * step, (1 - weight) * (old.var + weight * spread)


def _cusum(up: float, down: float, rising: float, z: float) -> tuple[float, float]:
    rise = _clamp(rising - _CUSUM_SLACK, -_CUSUM_STEP, _CUSUM_STEP)
    fall = _clamp(-z - _CUSUM_SLACK, -_CUSUM_STEP, _CUSUM_STEP)
    return _clamp(up + rise, 0.0, _CUSUM_ALARM), _clamp(down + fall, 0.0, _CUSUM_ALARM)


def _clamp(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _regressed(was: bool, anomalies: int, highs: int, up: float, settings: TrendSettings) -> bool:
    """Raised by k of n anomalous, or by the CUSUM with most samples high; cleared by
    ``recovery`` samples in a row that are not high."""
    if was:
        return highs & ((1 << settings.recovery) - 1) != 0
    window = (1 << settings.window) - 1
    if (anomalies & window).bit_count() >= settings.anomalous:
        return True
    return up >= _CUSUM_ALARM and 2 * (highs & window).bit_count() >= settings.window


def _fit(old: TrendState, y: float, t: float) -> tuple[float, float, float, float]:
    """The regression's moments after ``(t, y)``; a young series weighs samples equally."""
    weight = max(_FIT, 1 / (old.count + 1))
    dt, dy = t - old.fit_t, y - old.fit_y
    return (
        old.fit_t + weight * dt,
        old.fit_y + weight * dy,
        (1 - weight) * (old.fit_tt + weight * dt * dt),
        (1 - weight) * (old.fit_ty + weight * dt * dy),
    )


def _signal(state: TrendState, value: float, warming: bool, settings: TrendSettings) -> TrendSignal:
    ranked = sorted(state.recent)
    slope, eta = _trend(state, settings.limit)
    shift = "up" if state.up >= _CUSUM_ALARM else "down" if state.down >= _CUSUM_ALARM else ""
    return TrendSignal(
        regressed=state.regressed,
        warming_up=warming,
        value=value,
        baseline=math.exp(state.mean),
        ratio=math.exp(state.fast - state.mean),
        p50=_rank(ranked, 0.5),
        p95=_rank(ranked, 0.95),
        slope=slope,
        eta=eta,
        cusum_shift=shift,
    )


def _trend(state: TrendState, limit: float | None) -> tuple[float, float | None]:
    """The fitted gradient now (seconds per second) and the time to ``limit`` at it."""
    if state.fit_tt <= 0:
        return 0.0, None
    rate = state.fit_ty / state.fit_tt  # of log latency, per second
    fitted = state.fit_y + rate * (state.last - state.fit_t)
    level = math.exp(_clamp(fitted, math.log(_FLOOR), math.log(_CEILING)))
    slope = level * rate if math.isfinite(level * rate) else 0.0
    if limit is None or rate <= 0 or level >= limit:
        return slope, None
    eta = math.log(limit / level) / rate
    return slope, eta if math.isfinite(eta) else None


def _rank(ranked: list[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    return ranked[math.ceil(share * len(ranked)) - 1] if ranked else None


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _read_int(data: Mapping[str, object], name: str) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"trend state: {name} must be a whole number, not {value!r}")
    return value


def _read_float(data: Mapping[str, object], name: str) -> float:
    return _finite(name, data[name])


def _read_bool(data: Mapping[str, object], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise ValueError(f"trend state: {name} must be true or false, not {value!r}")
    return value


def _read_floats(data: Mapping[str, object], name: str) -> tuple[float, ...]:
    value = data[name]
    if not isinstance(value, list) or len(value) > RING:
        raise ValueError(f"trend state: {name} must be a list of at most {RING} numbers")
    return tuple(_finite(name, item) for item in value)


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"trend state: {name} must be a finite number, not {value!r}")
    return float(value)
