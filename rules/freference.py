"""Plain-Python oracle of :mod:`rules.fkernels`: row at a time, dicts keyed by names,
local time from ``zoneinfo`` and the sun from :mod:`contracts.astro` per row."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from contracts.config import DeviceConfig
from rules.families import sun_table
from rules.fcompile import FamilyRule
from rules.reference import guards_hold, heard_before
from rules.transition import Transition, subject_of

__all__ = ["FamilyReference"]

_NS = 1_000_000_000
_DAY = 86_400 * _NS


def _rx(p: str) -> re.Pattern[str]:
    return re.compile("^" + "(.+)".join(re.escape(x) for x in p.split("*")) + "$", re.DOTALL)


class FamilyReference:
    """Same inputs, same transitions as :class:`rules.families.FamilyEngine`."""

    def __init__(
        self,
        rules: list[FamilyRule],
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
    ):
        self.rules = list(rules)
        self.devices = dict(devices or {})
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.latest: dict[tuple[str, str], tuple[int, float]] = {}
        self.latch: dict[tuple, int] = {}
        self.raised: set[tuple] = set()
        self.mem: dict[tuple, object] = {}  # per-subject family memory
        self.last_seen: dict[tuple[str, str], int] = {}  # (rule_id, device) -> ts
        self.value: dict[tuple, float] = {}  # subject -> its latest derived value
        self.stands: dict[tuple, int] = {}  # subject -> until when the clock may confirm

    def _used(self, kind: str, field: str) -> bool:
        for r in self.rules:
            pats = [r.field] + [g.field for g in r.guards]
            pats += [r.other] if r.family == "cross" else []  # type: ignore[union-attr]
            if r.kind == kind and any(_rx(p).match(field) for p in pats):
                return True
        return False

    def process_rows(
        self, rows: Iterable[tuple[str, str, int, str, float | None]]
    ) -> list[Transition]:
        """Feed rows ``(device_id, kind, ts, field, value)`` in arrival order."""
        out: list[Transition] = []
        for dev, kind, ts, field, v in rows:
            if not self._used(kind, field) or v is None or math.isnan(v):
                continue
            prev = self.latest.get((dev, field))
            if prev is not None and ts < prev[0]:
                continue
            self.latest[(dev, field)] = (ts, v)
            for r in self.rules:
                m = _rx(r.field).match(field)
                if r.kind == kind and m is not None:
                    out.extend(self._row(r, dev, kind, field, m.groups(), ts, v))
        return out

    def tick(self, now: int) -> list[Transition]:
        """The clock: raise silent staleness subjects at ``now``, and conditions whose due
        time has come at that time (see :mod:`rules.fkernels`)."""
        out = []
        for (rid, dev), seen in self.last_seen.items():
            rule = next(r for r in self.rules if r.id == rid)
            key = (rid, dev, "")
            if key in self.raised or not guards_hold(rule, self.latest, dev, ()):
                continue
            if now - seen > round(rule.silent_s * _NS):  # type: ignore[union-attr]
                self.raised.add(key)
                out.append(Transition(rid, dev, dev, "", "raise", now, (now - seen) / 1e9,
                                      float(rule.silent_s)))  # type: ignore[union-attr]  # fmt: skip
        for r in self.rules:
            for key in [k for k in self.mem.keys() | self.latch.keys() if k[0] == r.id]:
                out.extend(self._confirm(r, key, now))
        return out

    def _confirm(self, r: FamilyRule, key: tuple, now: int) -> list[Transition]:
        _, dev, field = key
        if key in self.raised:
            return []
        if r.family == "flatline":
            run_ts = self.mem[key][0]  # type: ignore[index]
            due = run_ts + round(r.for_s * _NS)
            if due <= self.stands[key]:  # a row reached the due time: rows decided
                return []
            x = 1.0
        elif r.family in ("cross", "astro", "noise") and key in self.latch:
            due = self.latch[key] + round(r.for_s * _NS)
            if r.family != "cross" and due > self.stands[key]:
                return []
            x = self.value[key]
        else:
            return []
        groups = _rx(r.field).match(field).groups()  # type: ignore[union-attr]
        if due > now or not heard_before(self.latest, dev, due, r.max_silence_s):
            return []
        if not guards_hold(r, self.latest, dev, groups):
            return []
        self.latch[key] = self.latch.get(key, due)
        self.raised.add(key)
        subject = subject_of(dev, field, "*" in r.field)
        return [Transition(r.id, dev, subject, field, "raise", due, x, self._thresholds(r)[0])]

    def _row(self, r: FamilyRule, dev: str, kind: str, field: str, groups, ts: int, v: float):  # type: ignore[no-untyped-def]
        if r.family == "stale":
            self.last_seen[(r.id, dev)] = ts
            key = (r.id, dev, "")
            if key in self.raised:
                self.raised.discard(key)
                return [Transition(r.id, dev, dev, "", "clear", ts, v, float(r.silent_s))]
            return []
        key = (r.id, dev, field)
        x = self._derive(r, key, dev, ts, v)
        if x is None:
            return []
        self.value[key] = x
        op, set_, clear, for_ns = self._latch_params(r)
        crossing, release = (x > set_, x < clear) if op == "above" else (x < set_, x > clear)
        if not guards_hold(r, self.latest, dev, groups):
            crossing, release = False, True
        subject = subject_of(dev, field, "*" in r.field)
        thr_raise, thr_clear = self._thresholds(r)
        out = []
        if key not in self.latch:
            if crossing:
                self.latch[key] = ts
        elif release:
            del self.latch[key]
            if key in self.raised:
                self.raised.discard(key)
                out.append(Transition(r.id, dev, subject, field, "clear", ts, x, thr_clear))
        since = self.latch.get(key)
        if since is not None and key not in self.raised and ts - since >= for_ns:
            self.raised.add(key)
            out.append(Transition(r.id, dev, subject, field, "raise", ts, x, thr_raise))
        return out

    @staticmethod
    def _latch_params(r: FamilyRule) -> tuple[str, float, float, int]:
        if r.family == "spike":
            return "above", r.factor, r.factor, 0  # type: ignore[union-attr]
        if r.family in ("window", "rate", "cross"):
            return r.op, r.set, r.clear, round(r.for_s * _NS)  # type: ignore[union-attr,return-value]
        if r.family == "noise":
            return "above", 0.0, -r.hysteresis, round(r.for_s * _NS)  # type: ignore[union-attr]
        if r.family == "flatline":
            return "above", 0.5, 0.5, 0
        return "above", 0.5, 0.5, round(r.for_s * _NS)  # astro

    @staticmethod
    def _thresholds(r: FamilyRule) -> tuple[float, float]:
        if r.family in ("window", "rate", "cross"):
            return float(r.set), float(r.clear)  # type: ignore[union-attr,arg-type]
        if r.family == "noise":
            return float(r.day_limit), float(r.day_limit)  # type: ignore[union-attr]
        if r.family == "spike":
            return float(r.factor), float(r.factor)  # type: ignore[union-attr]
        return float(r.for_s), float(r.for_s)

    def _derive(self, r: FamilyRule, key: tuple, dev: str, ts: int, v: float) -> float | None:
        if r.family == "window":
            bw = max(1, round(r.window_s * _NS / r.buckets))  # type: ignore[union-attr]
            buckets: dict[int, list[float]] = self.mem.setdefault(key, {})  # type: ignore[assignment]
            b = ts // bw
            for old in [k for k in buckets if k <= b - r.buckets]:  # type: ignore[union-attr]
                del buckets[old]
            acc = buckets.setdefault(b, [0.0, 0, -math.inf])
            acc[0] += v
            acc[1] += 1
            acc[2] = max(acc[2], v)
            if len(buckets) < r.min_coverage * r.buckets:  # type: ignore[union-attr]
                return None
            if r.agg == "max":  # type: ignore[union-attr]
                return max(a[2] for a in buckets.values())
            # the kernel sums by ring position: do the same so floats agree bit for bit
            order = sorted(buckets, key=lambda k: k % r.buckets)  # type: ignore[union-attr]
            tot = 0.0
            for k in order:
                tot += buckets[k][0]
            return tot / sum(int(buckets[k][1]) for k in order)
        if r.family == "rate":
            prev = self.mem.get(key)
            self.mem[key] = (ts, v)
            if prev is None or prev[0] == ts:  # type: ignore[index]
                return None
            x = (v - prev[1]) / float(ts - prev[0]) * 60e9  # type: ignore[index]
            return abs(x) if r.absolute else x  # type: ignore[union-attr]
        if r.family == "spike":
            prev = self.mem.get(key)  # (ts, value, the value before)
            if prev is not None and prev[0] == ts:  # type: ignore[index]
                self.mem[key] = (ts, v, prev[2])  # type: ignore[index]
                return None
            self.mem[key] = (ts, v, prev[1] if prev else None)  # type: ignore[index]
            if prev is None or prev[2] is None:  # type: ignore[index]
                return None
            return prev[1] / max(prev[2], v, r.floor)  # type: ignore[index,union-attr]
        if r.family == "flatline":
            run = self.mem.get(key)
            if run is None or abs(v - run[1]) > r.eps:  # type: ignore[index,union-attr]
                run = (ts, v)
                self.mem[key] = run
            self.stands[key] = ts
            return 1.0 if ts - run[0] >= round(r.for_s * _NS) else 0.0  # type: ignore[index]
        if r.family == "cross":
            o = self.latest.get((dev, r.other))  # type: ignore[union-attr]
            if o is None or abs(ts - o[0]) > round(r.tolerance_s * _NS):  # type: ignore[union-attr]
                return None
            return v - o[1]
        local = datetime.fromtimestamp(ts // _NS, UTC).astimezone(self.tz)
        sec = (local.hour * 3600 + local.minute * 60 + local.second) * _NS + ts % _NS
        if r.family == "noise":
            a, b = round(r.day_start_h * 3600 * _NS), round(r.day_end_h * 3600 * _NS)  # type: ignore[union-attr]
            nxt = next((x for x in (a, b) if sec < x), _DAY + a)  # the next day/night change
            self.stands[key] = ts + nxt - sec
            return v - (r.day_limit if a <= sec < b else r.night_limit)  # type: ignore[union-attr]
        dc = self.devices.get(dev)
        day_no = (local.date() - datetime(1970, 1, 1).date()).days
        off, on = (
            sun_table(dc.location.lat, dc.location.lon, day_no) if dc and dc.location else (0, 0)
        )
        start = off + round(r.off_offset_min * 60 * _NS)  # type: ignore[union-attr]
        end = on + round(r.on_offset_min * 60 * _NS)  # type: ignore[union-attr]
        day = start <= ts < end
        # until the day/night state changes; an evening's night: to an hour before sunrise
        self.stands[key] = start if ts < start else end if ts < end else start + _DAY - 3600 * _NS
        lit = v >= 0.5
        if r.expect == "lit_in_day":  # type: ignore[union-attr]
            return 1.0 if lit and day else 0.0
        return 1.0 if not lit and not day else 0.0
