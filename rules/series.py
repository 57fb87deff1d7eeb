"""The dense series/slot index the threshold kernels run on.

A *series* is one (device_id, field) pair; a *slot* is one (rule, series) subject. Ids are
assigned here, outside the kernels: each batch is mapped by key hash (:mod:`rules.idmap`),
and only keys never seen before reach this module, a batch of them at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import repeat

import numpy as np
import polars as pl

from contracts.config import DeviceConfig, RuleConfig
from rules.compile import EXPECTED, Pattern
from rules.idmap import IdMap

__all__ = ["SeriesIndex"]

log = logging.getLogger(__name__)


class _Column:
    """A numpy column that grows by doubling, so appends cost amortised O(1) per element."""

    def __init__(self, dtype: type, width: int = 0):
        self._a: np.ndarray = np.zeros((16, width) if width else 16, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        """Append rows."""
        end = self.n + len(values)
        if end > len(self._a):
            grown = np.zeros((max(end, 2 * len(self._a)), *self._a.shape[1:]), self._a.dtype)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n : end] = values
        self.n = end

    @property
    def view(self) -> np.ndarray:
        """The filled part (a view: valid until the next append)."""
        return self._a[: self.n]


def _groups(keys: pl.DataFrame, devs: np.ndarray) -> list[tuple[str, str, list[str], np.ndarray]]:
    """(kind, field, device ids, rows) of each (kind, field) in a frame of keys; ``devs`` is
    its device_id column as an object array."""
    kf = [
        keys.get_column(c).cast(pl.Categorical).to_physical().to_numpy() for c in ("kind", "field")
    ]
    code = kf[0].astype(np.int64) * (int(kf[1].max()) + 1) + kf[1]
    order = np.argsort(code, kind="stable")
    bounds = [0, *(np.flatnonzero(np.diff(code[order])) + 1).tolist(), len(order)]
    heads = order[bounds[:-1]]
    kinds = keys.get_column("kind").gather(heads).to_list()
    fields = keys.get_column("field").gather(heads).to_list()
    return [
        (k, f, devs[order[a:b]].tolist(), order[a:b])
        for k, f, a, b in zip(kinds, fields, bounds, bounds[1:])
    ]


class SeriesIndex:
    """Dense int32 ids for series, devices and slots, growing as new devices and fields appear.

    A rule ``relative_to`` an expected value gets a slot only on devices whose attrs give
    that value (``devices``: id -> config); the others are counted in :attr:`unrated`.
    """

    def __init__(self, rules: list[RuleConfig], devices: Mapping[str, DeviceConfig] | None = None):
        self.rules = rules
        self.devices = devices or {}
        self._fields = [Pattern(r.field) for r in rules]
        self._guards = [[Pattern(g.field) for g in r.guards] for r in rules]
        self._width = max([len(r.guards) for r in rules] + [1])
        # sid -> device_id, kind, field as lists of str, and the map below keyed by field
        # then device: registering a city's series allocates no tuples (each would count
        # towards waking the cyclic garbage collector, many times over a first batch)
        self.ser_devs: list[str] = []
        self.ser_kinds: list[str] = []
        self.ser_fields: list[str] = []
        self._sid: dict[str, dict[str, int]] = {}  # field -> device_id -> sid, -1: unused
        self._dev: dict[str, int] = {}
        self._ser_dev = _Column(np.int32)
        self._slot_rule = _Column(np.int32)
        self._slot_series = _Column(np.int32)
        self._slot_guard = _Column(np.int32, self._width)  # guard series ids, -1 after the last
        self._slot_scale = _Column(np.float64)  # 1, or the expected value for relative rules
        self.unrated: dict[str, int] = {}  # rule id -> subjects without an expected value
        self._plans: dict[tuple[str, str], tuple[list[tuple[int, str]], bool]] = {}
        self._ids = IdMap(self.ensure, resolve_many=self.ensure_many)
        self._csr: tuple[np.ndarray, np.ndarray] | None = None
        self._max_feed = 0
        self._slot_arrays: tuple[np.ndarray, ...] | None = None
        self._set = np.array([r.set for r in rules], dtype=np.float64)
        self._clear = np.array([r.clear for r in rules], dtype=np.float64)

    @property
    def n_series(self) -> int:
        """Number of series with an id."""
        return len(self.ser_devs)

    @property
    def n_slots(self) -> int:
        """Number of rule subjects."""
        return self._slot_rule.n

    @property
    def n_devices(self) -> int:
        """Number of devices with an id."""
        return len(self._dev)

    def lookup(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """Series id of every row (int32, -1 where no rule uses the series), registering new keys.

        ``hashes`` (from :func:`rules.idmap.key_hashes`) lets several engines share one pass.
        """
        return self._ids.lookup(frame, hashes)

    def ensure(self, device_id: str, kind: str, field: str) -> int:
        """The id of a series (-1 if no rule uses it), creating it and its slots when new."""
        return self._ids_of([device_id], kind, field)[0]

    def ensure_many(self, keys: pl.DataFrame) -> np.ndarray:
        """:meth:`ensure` of many keys (a frame of device_id, kind, field; int32 ids).

        Rule patterns are matched once per (kind, field), the rest is list and array work.
        New series and slots get ids in the frame's order: a device's rows arrive together,
        so its series sit side by side and the kernels' state reads share cache lines."""
        out = np.full(keys.height, -2, dtype=np.int32)  # -2: not decided yet
        if keys.height == 0:
            return out
        taken: list[np.ndarray] = []  # rows of new keys that get a series
        news: list[tuple[str, list[str], np.ndarray]] = []  # (field, devices, rows) of new keys
        subj: list[tuple] = []  # (rows, rule, kind, star, devices, expected values or None)
        dev_col = keys.get_column("device_id").to_numpy()
        for kind, field, devs, rows in _groups(keys, dev_col):
            known = self._sid.setdefault(field, {})
            out[rows] = list(map(known.get, devs, repeat(-2))) if known else -2
            new = np.flatnonzero(out[rows] == -2)
            nd = devs if len(new) == len(devs) else [devs[p] for p in new.tolist()]
            if len(set(nd)) < len(nd):  # a key twice in one frame: its first row decides
                first = dict(zip(reversed(nd), range(len(nd) - 1, -1, -1)))
                new = new[sorted(first.values())]
                nd = [devs[p] for p in new.tolist()]
            if not nd:
                continue
            rows = rows[new]
            out[rows] = -1  # no series unless a rule or a guard reads it
            subjects, is_guard = self._plan(kind, field)
            use = np.full(len(nd), is_guard)
            for i, star in subjects:
                pos, exp = np.arange(len(nd)), None
                if self.rules[i].relative_to is not None:  # where the device's attrs allow
                    e = self._expected(i, nd, star)
                    pos = np.asarray([p for p, x in enumerate(e) if x is not None], dtype=np.int64)
                    exp = [e[p] for p in pos.tolist()]
                use[pos] = True
                ds = nd if exp is None else [nd[p] for p in pos.tolist()]
                subj.append((rows[pos], i, kind, star, ds, exp))
            taken.append(rows[use])
            news.append((field, nd, rows))
        if taken:
            u = np.sort(np.concatenate(taken))
            out[u] = np.arange(self.n_series, self.n_series + len(u))
            devs_u = dev_col[u].tolist()
            self.ser_devs.extend(devs_u)
            for col, to in (("kind", self.ser_kinds), ("field", self.ser_fields)):
                to.extend(keys.get_column(col).to_numpy()[u].tolist())
            dev = self._dev
            for d in dict.fromkeys(devs_u):
                dev.setdefault(d, len(dev))
            self._ser_dev.extend(np.fromiter(map(dev.__getitem__, devs_u), np.int32, len(u)))
            self._csr = self._slot_arrays = None
        for field, nd, rows in news:
            self._sid[field].update(zip(nd, out[rows].tolist()))
        if subj:
            self._add_slots(subj, out)
        for r in np.flatnonzero(out == -2).tolist():  # the repeats of a key in this frame
            d, _, f = keys.select("device_id", "kind", "field").row(r)
            out[r] = self._sid[f][d]
        return out

    def _ids_of(self, devs: list[str], kind: str, field: str) -> list[int]:
        """Ids of one (kind, field) on some devices, registering the missing ones."""
        known = self._sid.setdefault(field, {})
        missing = [d for d in dict.fromkeys(devs) if d not in known]
        if missing:
            n = len(missing)
            keys = {"device_id": missing, "kind": [kind] * n, "field": [field] * n}
            self.ensure_many(pl.DataFrame(keys, schema=dict.fromkeys(keys, pl.String)))
        return [known[d] for d in devs]

    def _add_slots(self, subj: list[tuple], out: np.ndarray) -> None:
        """Append the slots of new series: in row order, a series' slots in rule order."""
        rows = np.concatenate([s[0] for s in subj])
        rule = np.concatenate([np.full(len(s[0]), s[1], dtype=np.int32) for s in subj])
        guards = np.full((len(rows), self._width), -1, dtype=np.int32)
        scale = np.ones(len(rows))
        at = 0
        for r, i, kind, star, devs, exp in subj:
            # guard series first: registering one this frame lacks appends series and slots
            for j, g in enumerate(self._guards[i]):
                guards[at : at + len(r), j] = self._ids_of(devs, kind, g.fill(star))
            if exp is not None:
                scale[at : at + len(r)] = exp
            at += len(r)
        order = np.lexsort((rule, rows))
        self._slot_rule.extend(rule[order])
        self._slot_series.extend(out[rows[order]])
        self._slot_guard.extend(guards[order])
        self._slot_scale.extend(scale[order])
        self._csr = self._slot_arrays = None

    def _expected(self, i: int, devs: list[str], star: str) -> list[float | None]:
        """The expected value rule i's levels scale by on each device (None where the
        device's attrs do not give it: the rule does not apply there)."""
        r = self.rules[i]
        cfgs = [self.devices.get(d) for d in devs]
        exp = [None if c is None else EXPECTED[r.relative_to](c.attrs, star) for c in cfgs]  # type: ignore[index]
        missing = [d for d, x in zip(devs, exp) if x is None]
        if missing:
            if r.id not in self.unrated:
                log.warning("rule %s: the attrs of %s give no %s, so the rule does not apply "
                            "to it (nor to further such subjects: stats unrated_subjects)",
                            r.id, missing[0], r.relative_to)  # fmt: skip
            self.unrated[r.id] = self.unrated.get(r.id, 0) + len(missing)
        return exp

    def _plan(self, kind: str, field: str) -> tuple[list[tuple[int, str]], bool]:
        # the same (kind, field) recurs on every device: match the rule patterns once
        plan = self._plans.get((kind, field))
        if plan is None:
            ours = [i for i, r in enumerate(self.rules) if r.kind == kind]
            matches = [(i, self._fields[i].match(field)) for i in ours]
            is_guard = any(g.match(field) is not None for i in ours for g in self._guards[i])
            plan = ([(i, star) for i, star in matches if star is not None], is_guard)
            self._plans[(kind, field)] = plan
        return plan

    def feeds(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR of the slots each series feeds: slots of sid are ``slot[ptr[sid]:ptr[sid+1]]``."""
        if self._csr is None:
            series = self._slot_series.view
            counts = np.bincount(series, minlength=self.n_series)
            ptr = np.zeros(self.n_series + 1, dtype=np.int64)
            np.cumsum(counts, out=ptr[1:])
            # stable: a series' slots stay in rule order, which the reference engine relies on
            order = np.argsort(series, kind="stable").astype(np.int32)
            self._csr = (ptr, order)
            self._max_feed = int(counts.max()) if len(counts) else 0
        return self._csr

    def slot_arrays(self) -> tuple[np.ndarray, ...]:
        """(rule number, device id, guard series ids [n, max guards] (-1 after the last),
        set level, clear level) of every slot, and the device id of every series."""
        if self._slot_arrays is None:
            ser_dev = self._ser_dev.view
            rule, scale = self._slot_rule.view, self._slot_scale.view
            self._slot_arrays = (
                rule,
                ser_dev[self._slot_series.view],
                self._slot_guard.view,
                self._set[rule] * scale,
                self._clear[rule] * scale,
                ser_dev,
            )
        return self._slot_arrays

    def slot_key(self, slot: int) -> tuple[str, str, str]:
        """(rule_id, device_id, field) of a slot."""
        sid = self._slot_series.view[slot]
        return self.rules[self._slot_rule.view[slot]].id, self.ser_devs[sid], self.ser_fields[sid]

    @property
    def slot_series(self) -> np.ndarray:
        """The series id of every slot (a view: valid until new slots)."""
        return self._slot_series.view

    def max_feed(self) -> int:
        """The most slots one series feeds (one row's worth of transitions at most)."""
        self.feeds()
        return self._max_feed
