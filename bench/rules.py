"""Rules engine throughput: numba engine vs the Python reference vs a polars implementation.

All three run the shipped Chengdu threshold rules over the same stream in 10k-row batches
and must produce the same transitions. The Python reference is timed on a subsample and
its rate extrapolated per row (labelled so). Figures are end to end, id mapping included;
polars is limited to one thread so "one core" holds for every contestant. The sensor part
also says where the numba engine's time goes, stage by stage.
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # must precede the first polars import

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from bench._rules_polars import PolarsRules  # noqa: E402
from contracts.config import DeviceConfig  # noqa: E402
from contracts.geofence import GeofenceConfig  # noqa: E402
from contracts.rule_config import VEHICLE_FAMILIES  # noqa: E402
from rules.defaults import load_default_rules  # noqa: E402
from rules.engine import RulesEngine  # noqa: E402
from rules.idmap import key_hashes  # noqa: E402
from rules.kernels import readonly  # noqa: E402
from rules.reference import ReferenceEngine  # noqa: E402
from rules.series import SeriesIndex  # noqa: E402
from rules.vreference import VehicleReference  # noqa: E402

__all__ = ["run", "city_stream"]

S = 1_000_000_000
_T0 = 1_763_942_400 * S
_LC = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
       "leakage_current", "door_open", "power_factor", "active_power",
       *[f"circuit{i}_{x}" for i in range(1, 7) for x in ("on", "current")]]  # fmt: skip
_DM = ["pm25", "pm10", "tsp", "noise", "wind_speed", "wind_direction", "temperature", "humidity"]
_VH = ["lat", "lon", "speed", "heading", "cover_open"]
_BASE = {"voltage": 220.0, "current_l": 40.0, "leakage": 10.0, "door": 0.0, "power_f": 0.9,
         "active": 20.0, "_on": 1.0, "_current": 3.0, "pm25": 50.0, "pm10": 120.0, "tsp": 200.0,
         "noise": 60.0, "wind_s": 3.0, "wind_d": 180.0, "temp": 20.0, "humid": 60.0,
         "lat": 30.6, "lon": 104.0, "speed": 40.0, "heading": 90.0, "cover": 0.0}  # fmt: skip


def _base(field: str) -> float:
    return next(v for k, v in _BASE.items() if k in field)


def city_stream(rows: int, kind: str, devices: int, seed: int = 11) -> pl.DataFrame:
    """A deterministic telemetry stream: every device reports all its fields each interval."""
    rng = np.random.default_rng(seed)
    if kind == "vehicle":
        kinds = [("vehicle", "TRK", _VH)]
    else:
        kinds = [("lighting_cabinet", "LC", _LC), ("dust_monitor", "DM", _DM)]
    dev_ids, dev_kind, dev_fields = [], [], []
    for i in range(devices):
        k, prefix, fields = kinds[i % len(kinds)]
        dev_ids.append(f"{prefix}-{i:05d}")
        dev_kind.append(k)
        dev_fields.append(fields)
    per_round = sum(len(f) for f in dev_fields)
    d_idx = np.concatenate([np.full(len(f), i) for i, f in enumerate(dev_fields)])
    f_names = np.concatenate([np.asarray(f) for f in dev_fields])
    reps = -(-rows // per_round)
    d = np.tile(d_idx, reps)[:rows]
    f = np.tile(f_names, reps)[:rows]
    rnd = np.repeat(np.arange(reps), per_round)[:rows]
    base = np.array([_base(x) for x in f_names])
    v = np.tile(base, reps)[:rows] * rng.normal(1.0, 0.08, rows)
    # excursions: a few percent of rows far out, so rules latch, raise and clear
    hit = rng.random(rows) < 0.03
    v[hit] *= rng.choice([0.0, 0.05, 3.0, 9.0], hit.sum())
    binary = np.char.endswith(f.astype(str), "_on") | (f == "door_open") | (f == "cover_open")
    v[binary] = (rng.random(binary.sum()) < np.where(f[binary] == "door_open", 0.01, 0.9)) * 1.0
    if kind == "vehicle":  # tracks: each truck drives a straight line across the city
        start = rng.uniform((30.55, 103.95), (30.75, 104.15), (devices, 2))
        step = rng.normal(0.0, 2.0e-4, (devices, 2))  # ~ 20 m per 5 s round
        for j, fld in ((0, "lat"), (1, "lon")):
            m = f == fld
            v[m] = start[d[m], j] + step[d[m], j] * rnd[m]
        jump = (f == "lat") & (rng.random(rows) < 0.002)  # GPS jumps of ~ 5 km
        v[jump] += 0.05
    v[rng.random(rows) < 0.001] = np.nan
    return pl.DataFrame(
        {
            "device_id": np.asarray(dev_ids)[d],
            "kind": np.asarray(dev_kind)[d],
            "ts": _T0 + rnd.astype(np.int64) * 5 * S + d.astype(np.int64) * 1000,
            "field": f,
            "value": v,
        },
        schema={"device_id": pl.String, "kind": pl.String, "ts": pl.Int64,
                "field": pl.String, "value": pl.Float64},
    )  # fmt: skip


def city_geofences(n: int = 60, seed: int = 5, plants: int = 2) -> list[GeofenceConfig]:
    """Geofences of every kind spread over the stream's area (routes list some trucks), and
    ``plants`` treatment plants for the kitchen-waste trucks."""
    rng = np.random.default_rng(seed)
    out = []
    kinds = ["construction_site", "disposal_site", "depot", "banned_zone", "approved_route",
             "collection_point"]  # fmt: skip
    for i in range(n):
        k = kinds[i % len(kinds)]
        la, lo = rng.uniform((30.55, 103.95), (30.75, 104.15))
        g: dict = {"id": f"G{i:03d}", "kind": k}
        if k == "approved_route":
            g["line"] = [(lo + 0.01 * j, la + 0.004 * j * (-1) ** j) for j in range(6)]
            g["vehicles"] = [f"TRK-{j:05d}" for j in range(i, 2000, 7)]
        elif k in ("disposal_site", "banned_zone"):
            r = rng.uniform(0.002, 0.01)
            g["polygon"] = [(lo, la), (lo + r, la), (lo + r, la + r), (lo + r / 3, la + r * 1.2)]
            g["hours"] = ("07:00", "19:00") if k == "banned_zone" else None
        else:
            g["center"], g["radius_m"] = (lo, la), float(rng.uniform(80, 400))
            g["hours"] = ("09:00", "11:00") if k == "collection_point" else None
        out.append(GeofenceConfig.model_validate(g))
    for i in range(plants):
        la, lo = rng.uniform((30.55, 103.95), (30.75, 104.15))
        out.append(GeofenceConfig(id=f"TP{i:02d}", kind="treatment_plant", center=(lo, la),
                                  radius_m=250.0, fleets=["kitchen_waste"]))  # fmt: skip
    return out


def city_vehicles(devices: int) -> dict[str, DeviceConfig]:
    """Device configs of the stream's trucks with their fleets."""
    fleets = ("construction_waste", "sanitation", "kitchen_waste")
    return {
        f"TRK-{i:05d}": DeviceConfig(id=f"TRK-{i:05d}", kind="vehicle", protocol="jt808",
                                     profile="p", endpoint="x", attrs={"fleet": fleets[i % 3]})
        for i in range(devices)
    }  # fmt: skip


def _batches(frame: pl.DataFrame, batch: int) -> list[pl.DataFrame]:
    return [frame.slice(i, batch) for i in range(0, frame.height, batch)]


def _key(tr) -> tuple:
    return (tr.rule_id, tr.subject, tr.kind, tr.ts)


def _numba(rules, batches, **kw) -> tuple[float, float, list]:
    eng = RulesEngine(rules, **kw)
    out: list = []
    t0 = time.perf_counter()
    for b in batches:
        out.extend(eng.process(b))
    first = time.perf_counter() - t0
    # a second pass over the same devices, later in time: the steady state once all are known
    later = [b.with_columns(pl.col("ts") + 10**6 * S) for b in batches]
    t0 = time.perf_counter()
    for b in later:
        eng.process(b)
    return first, time.perf_counter() - t0, out


def _stages(rules, batches: list[pl.DataFrame]) -> dict:
    """Where the numba engine's time goes on the threshold rules, ns per row (best of 3):
    key hashing, id probing (known keys), the kernel with its transitions, the rest of a
    batch's path; and registering the stream's keys (all new), in µs per key."""
    eng = RulesEngine(rules)
    th = eng.thresholds
    for b in batches:
        eng.process(b)
    rows = sum(b.height for b in batches)
    keys = pl.concat(batches).unique(["device_id", "field"], maintain_order=True)  # each once
    best: dict[str, float] = {}

    def timed(name: str, fn, items) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best[name] = min(best.get(name, np.inf), time.perf_counter() - t0)

    for rep in range(3):  # each pass later in time than the one before: no late rows
        later = [b.with_columns(pl.col("ts") + (2 * rep + 1) * 10**6 * S) for b in batches]
        hashes = [key_hashes(b) for b in later]
        arrays = [(readonly(th.index.lookup(b, h)), readonly(b.get_column("ts").to_numpy()),
                   readonly(b.get_column("value").to_numpy())) for b, h in zip(later, hashes)]  # fmt: skip
        timed("key_hash", key_hashes, later)
        timed("id_probe", lambda bh: th.index.lookup(*bh), zip(later, hashes))
        timed("kernel_and_transitions", lambda a: th.run(*a), arrays)
        later = [b.with_columns(pl.col("ts") + (2 * rep + 2) * 10**6 * S) for b in batches]
        timed("total", eng.process, later)
        timed("register", SeriesIndex(rules).lookup, [keys])
    out = {k: round(v / rows * 1e9, 1) for k, v in best.items() if k != "register"}
    out["rest_of_batch"] = round(out["total"] - sum(v for k, v in out.items() if k != "total"), 1)
    out["register_us_per_key"] = round(best["register"] / keys.height * 1e6, 2)
    return out


def _reference(rules, frame: pl.DataFrame, rows: int, batch: int, **kw) -> tuple[float, list]:
    thr = [r for r in rules if r.family == "threshold"]
    veh = [r for r in rules if r.family in VEHICLE_FAMILIES]
    ref = ReferenceEngine(thr)
    vref = VehicleReference(veh, kw.get("geofences") or [], kw.get("devices")) if veh else None
    part = frame.head(rows)
    t0 = time.perf_counter()
    out = []
    for b in _batches(part, batch):  # the vehicle oracle assembles fixes per batch
        it = list(b.iter_rows())
        out += ref.process_rows(it)
        out += vref.process_rows(it) if vref else []
    return time.perf_counter() - t0, out


def _polars(rules, batches) -> tuple[float, list]:
    eng = PolarsRules(rules)
    out: list = []
    t0 = time.perf_counter()
    for b in batches:
        out.extend(eng.process(b))
    return time.perf_counter() - t0, out


def _startup(cache_dir: str) -> float:
    code = (
        "import time; t=time.perf_counter(); from rules.engine import RulesEngine; "
        "from rules.defaults import load_default_rules; RulesEngine(load_default_rules()); "
        "print(time.perf_counter()-t)"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(res.stdout.strip().splitlines()[-1])


def run(rows: int = 2_000_000, batch: int = 10_000, ref_rows: int = 100_000) -> dict:
    """Sensor and vehicle rows/s of the three engines on one stream, and start-up times."""
    # the three engines are compared on the threshold rules, which all three implement;
    # the vehicle stream adds the vehicle rules (numba vs the Python oracle; polars: thresholds)
    every = load_default_rules()
    rules = [r for r in every if r.family == "threshold"]
    sensor_rules = [r for r in rules if r.domain != "vehicle"]
    vehicle_rules = [r for r in rules if r.domain == "vehicle"]
    fix_rules = [r for r in every if r.family in VEHICLE_FAMILIES]
    geo = city_geofences()
    res: dict = {"rows": rows, "batch": batch, "sensor_rules": len(sensor_rules),
                 "vehicle_rules": len(vehicle_rules) + len(fix_rules), "geofences": len(geo),
                 "polars_threads": pl.thread_pool_size()}  # fmt: skip
    for name, kind, rs, devices in (
        ("sensor", "sensor", rules, 2000),
        ("vehicle", "vehicle", rules + fix_rules, 2000),
    ):
        kw = {"geofences": geo, "devices": city_vehicles(devices)} if kind == "vehicle" else {}
        frame = city_stream(rows, kind, devices)
        batches = _batches(frame, batch)
        t_first, t_steady, got = _numba(rs, batches, **kw)
        ref_rows = max(batch, ref_rows // batch * batch)  # whole batches, to compare
        t_ref, ref = _reference(rs, frame, ref_rows, batch, **kw)
        t_pl, pol = _polars(rules, batches)
        thr_ids = {r.id for r in rules}
        n_ref = min(ref_rows, rows)
        ref_rate = n_ref / t_ref
        nb_rate = rows / t_first
        res[name] = {
            "numba_rows_per_s": round(nb_rate),
            "numba_steady_rows_per_s": round(rows / t_steady),
            "python_reference_rows_per_s_extrapolated": round(ref_rate),
            "python_reference_sample_rows": n_ref,
            "polars_rows_per_s": round(rows / t_pl),
            "x_vs_python": round(nb_rate / ref_rate, 1),
            "x_vs_polars": round(nb_rate / (rows / t_pl), 1),
            "transitions": len(got),
            "same_as_reference_on_sample": sorted(_sample_keys(rs, batches, n_ref // batch, kw))
            == sorted(_key(t) for t in ref),
            "same_as_polars_on_thresholds": [_key(t) for t in got if t.rule_id in thr_ids]
            == [_key(t) for t in pol],
        }
        if kind == "sensor":
            res[name]["numba_stages_ns_per_row"] = _stages(rs, batches)
        if kind == "vehicle":
            res[name]["polars_rules"] = "thresholds only"
            res[name]["vehicle_rule_transitions"] = sum(t.rule_id not in thr_ids for t in got)
    with tempfile.TemporaryDirectory() as empty:
        res["startup_cold_compile_s"] = round(_startup(empty), 2)
        res["startup_with_cache_s"] = round(_startup(empty), 2)
    return res


def _sample_keys(rules, batches, n: int, kw: dict) -> list:
    eng = RulesEngine(rules, **kw)
    return [_key(t) for b in batches[:n] for t in eng.process(b)]


if __name__ == "__main__":
    import json

    print(json.dumps(run(**{k: int(v) for k, v in (a.split("=") for a in sys.argv[1:])})))
