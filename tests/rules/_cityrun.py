"""Drive the simulated city's device models and the rules in-process, on a simulated clock.

The same models ``rongguan demo`` serves over OPC-UA and Modbus, stepped once a second of
simulated time and read every reporting interval, straight into the rules engine and an
alarm book; faults come from a scenario file and are recorded as ground truth exactly as
:class:`hardware.sim.city.SimulatedCity` records them. An hour of city runs in seconds.

With ``deadband_pct`` the devices report by exception, as OPC-UA subscriptions with a
deadband do: a value is sent only when it moved more than that share since it was last
sent (a boolean: when it changed), so a constant value is sent once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from contracts.astro import CST
from contracts.config import DeviceConfig, RuleConfig
from hardware.inventory import build_inventory
from hardware.sim.dust import DustModel
from hardware.sim.faults import (
    OFFLINE_KINDS,
    RULE_FAMILY,
    Fault,
    FaultError,
    GroundTruth,
    load_scenario,
    subject_of,
)
from hardware.sim.lighting import CabinetModel
from rules.alarms import AlarmBook
from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from tests.rules._helpers import SCHEMA

S = 1_000_000_000
LC, DM = "lighting_cabinet", "dust_monitor"


def _due(timeline: list, t: int, now: float) -> Iterator[tuple[dict, Fault]]:
    """The scenario's faults due by second ``t`` (taken off ``timeline``), started at ``now``."""
    while timeline and timeline[0][0] <= t:
        _, f = timeline.pop(0)
        dur = f.get("duration_s")
        params = {k: v for k, v in f.items() if k not in ("kind", "device")}
        yield f, Fault(f["kind"], f["device"], params, now, None if dur is None else now + dur)


def _end_ns(fault: Fault) -> int | None:
    return None if fault.until is None else int(fault.until * S)


def _devices(inv: Any) -> dict[str, DeviceConfig]:
    out = {}
    for c in inv.cabinets:
        attrs = {"road": c.road, "road_class": c.road_class, "lamp_watts": f"{c.lamp_watts:g}",
                 "lamps_per_circuit": ",".join(map(str, c.lamps_per_circuit))}  # fmt: skip
        out[c.id] = DeviceConfig(id=c.id, kind=LC, protocol="opcua", profile=c.profile,
                                 endpoint="opc.tcp://h:1", location={"lat": c.lat, "lon": c.lon},
                                 attrs=attrs)  # fmt: skip
    for d in inv.dust_monitors:
        out[d.id] = DeviceConfig(id=d.id, kind=DM, protocol="modbus", profile=d.profile,
                                 endpoint="modbus://h:1", location={"lat": d.lat, "lon": d.lon},
                                 attrs={"permit_no": d.permit_no})  # fmt: skip
    return out


def run_city(
    out_dir: Path,
    scenario: Path,
    duration_s: int,
    size: str = "district",
    start: str = "2026-03-10T20:30:00",
    every_s: dict[str, int] | None = None,
    deadband_pct: float | None = None,
) -> dict[str, Any]:
    """Run the scenario; alarms land in ``out_dir/alarms.db``, faults in ground-truth.jsonl."""
    every = {LC: 5, DM: 10, **(every_s or {})}
    inv = build_inventory(size, 1)
    cabinets = {c.id: CabinetModel(c, random.Random(f"1/{c.id}")) for c in inv.cabinets}
    dust = {d.id: DustModel(d, random.Random(f"1/{d.id}")) for d in inv.dust_monitors}
    kinds = {**{k: LC for k in cabinets}, **{k: DM for k in dust}}
    plan = load_scenario(scenario, kinds)
    t0 = int(datetime.fromisoformat(start).replace(tzinfo=CST).timestamp())
    devices = _devices(inv)
    rules = load_default_rules()
    engine = RulesEngine(rules, devices=devices, tz=CST)
    by_id = {r.id: r for r in rules}
    book = AlarmBook(out_dir / "alarms.db", lambda ev: None, devices=devices)
    truth = GroundTruth(out_dir / "ground-truth.jsonl")
    offline: list[Fault] = []
    timeline = list(plan.faults)
    rows: list[tuple] = []
    transitions = []
    sent: dict[tuple[str, str], float] = {}  # by exception: the value last sent
    for t in range(duration_s + 1):
        now = float(t0 + t)
        for f, active in _due(timeline, t, now):
            if f["kind"] in OFFLINE_KINDS:
                offline.append(active)
            else:
                (cabinets.get(f["device"]) or dust[f["device"]]).faults.append(active)
            truth.record({**f, "subject": subject_of(f), "family": RULE_FAMILY[f["kind"]],
                          "start_ns": int(now * S), "end_ns": _end_ns(active)}, int(now * S))  # fmt: skip
        down = {f.device for f in offline if f.active(now)}
        for models, kind in ((cabinets, LC), (dust, DM)):
            for dev_id, model in models.items():
                model.step(now)
                if t % every[kind] or dev_id in down:
                    continue
                for field, value in model.state(now).items():
                    v = float(value)
                    last = sent.get((dev_id, field))
                    if deadband_pct is not None and last is not None:
                        if abs(v - last) <= deadband_pct / 100 * max(abs(last), 1.0):
                            continue
                    sent[(dev_id, field)] = v
                    rows.append((dev_id, kind, int(now * S), field, v))
        if t % 10 == 0 or t == duration_s:  # the agents' batching
            trs = engine.process(pl.DataFrame(rows, schema=SCHEMA, orient="row")) if rows else []
            trs += engine.tick(int(now * S))
            rows = []
            for tr in trs:
                rule = by_id[tr.rule_id]
                if isinstance(rule, RuleConfig) or hasattr(rule, "severity"):
                    book.on_transition(tr, rule)  # type: ignore[arg-type]
            book.tick(int(now * S))
            transitions += trs
    book.close()
    return {"transitions": transitions, "alarms_db": out_dir / "alarms.db",
            "truth": out_dir / "ground-truth.jsonl", "rules": rules}  # fmt: skip


VEH = "vehicle"


def _vehicle_devices(inv: Any) -> dict[str, DeviceConfig]:
    return {v.id: DeviceConfig(id=v.id, kind=VEH, protocol="mqtt_tracker", profile=v.profile,
                               endpoint="trackers/x", attrs={"plate": v.plate, "fleet": v.fleet},
                               location={"lat": v.depot_lat, "lon": v.depot_lon})
            for v in inv.vehicles}  # fmt: skip


def run_fleet(
    out_dir: Path,
    scenario: Path,
    duration_s: int,
    size: str = "district",
    start: str = "2026-03-10T09:30:00",
    every_s: int = 10,
) -> dict[str, Any]:
    """Run a truck scenario: the district's fleets report a fix every ``every_s``; alarms
    land in ``out_dir/alarms.db``, faults (with the geofence each breaks) in ground-truth.jsonl.

    As the JT/T 808 terminals do, a truck in a blind area keeps its fixes and sends them,
    late, after its first live fix; an offline tracker sends nothing."""
    from contracts.faults import rule_for
    from contracts.geofence import GeofenceConfig
    from hardware.sim.deployment import geofences
    from hardware.sim.trucks import TruckModel

    inv = build_inventory(size, 1)
    trucks = {v.id: TruckModel(v, inv, random.Random(f"1/{v.id}")) for v in inv.vehicles}
    plan = load_scenario(scenario, {k: VEH for k in trucks})
    t0 = int(datetime.fromisoformat(start).replace(tzinfo=CST).timestamp())
    devices = _vehicle_devices(inv)
    geo = [GeofenceConfig.model_validate(g) for g in geofences(inv)]
    rules = load_default_rules()
    engine = RulesEngine(rules, devices=devices, tz=CST, geofences=geo)
    by_id = {r.id: r for r in rules}
    book = AlarmBook(out_dir / "alarms.db", lambda ev: None, devices=devices, geofences=geo)
    truth = GroundTruth(out_dir / "ground-truth.jsonl")
    offline: list[Fault] = []
    timeline = list(plan.faults)
    blind: dict[str, list[tuple]] = {}
    skipped: list[str] = []
    rows: list[tuple] = []
    transitions = []
    for t in range(duration_s + 1):
        now = float(t0 + t)
        for f, active in _due(timeline, t, now):
            extra: dict[str, Any] = {"fleet": trucks[f["device"]].veh.fleet}
            if f["kind"] in OFFLINE_KINDS:
                offline.append(active)
            else:
                try:  # as the city does: a fault that makes no sense is logged and skipped
                    extra.update(trucks[f["device"]].plan(active, now))
                except FaultError as exc:
                    skipped.append(str(exc))
                    continue
                trucks[f["device"]].faults.append(active)
            truth.record({**f, **extra, "subject": subject_of(f),
                          "family": rule_for(f["kind"], extra["fleet"]), "start_ns": int(now * S),
                          "end_ns": _end_ns(active)},
                         int(now * S))  # fmt: skip
        down = {f.device for f in offline if f.active(now)}
        for vid, model in trucks.items():
            model.step(now)
            if t % every_s or vid in down:
                continue
            fix = [(vid, VEH, int(now * S), k, float(v)) for k, v in model.state(now).items()]
            if model._fault("blind_area", now) is not None:
                blind.setdefault(vid, []).extend(fix)
                continue
            rows += fix + blind.pop(vid, [])  # the live fix first, then the backlog
        if t % 10 == 0 or t == duration_s:  # the agents' batching
            trs = engine.process(pl.DataFrame(rows, schema=SCHEMA, orient="row")) if rows else []
            trs += engine.tick(int(now * S))
            rows = []
            for tr in trs:
                book.on_transition(tr, by_id[tr.rule_id])  # type: ignore[arg-type]
            book.tick(int(now * S))
            transitions += trs
    book.close()
    return {"transitions": transitions, "alarms_db": out_dir / "alarms.db",
            "truth": out_dir / "ground-truth.jsonl", "rules": rules, "stats": engine.stats(),
            "geofences": geo, "trucks": trucks, "skipped": skipped}  # fmt: skip
