"""The threshold rules written as polars expressions: the benchmark's dataframe baseline.

Same semantics as :mod:`rules.kernels` (hysteresis latch, duration, guard as of arrival
order, late and NaN rows ignored), vectorised per batch with window expressions, and the
state carried between batches as two small frames.
"""

from __future__ import annotations

import polars as pl

from contracts.config import RuleConfig
from rules.compile import Pattern
from rules.transition import Transition, subject_of

__all__ = ["PolarsRules"]

_SUB = ["rule", "device_id", "field"]
_SER = ["device_id", "field"]


class PolarsRules:
    """Threshold rules over telemetry frames, evaluated with polars window expressions."""

    def __init__(self, rules: list[RuleConfig]):
        # threshold rules only: the other families have no polars twin yet; nor have levels
        # relative to an asset register, which without device attrs apply to no device
        rules = [
            r
            for r in rules
            if getattr(r, "family", "threshold") == "threshold" and r.relative_to is None
        ]
        self.rules = list(rules)
        self._pat = [Pattern(r.field) for r in rules]
        self._gpat = [[Pattern(g.field) for g in r.guards] for r in rules]
        self._ng = max([len(r.guards) for r in rules] + [1])
        self._plans: dict[tuple[str, str], list[tuple]] = {}
        self.ser = pl.DataFrame(
            schema={"device_id": pl.String, "field": pl.String, "last_ts": pl.Int64,
                    "last_val": pl.Float64}
        )  # fmt: skip
        self.sub = pl.DataFrame(
            schema={"rule": pl.Int32, "device_id": pl.String, "field": pl.String,
                    "latched0": pl.Boolean, "since0": pl.Int64, "active0": pl.Boolean}
        )  # fmt: skip
        self._params = pl.DataFrame(
            {
                "rule": pl.Series(range(len(rules)), dtype=pl.Int32),
                "above": [r.op == "above" for r in rules],
                "set": [float(r.set) for r in rules],
                "clear": [float(r.clear) for r in rules],  # type: ignore[arg-type]
                "for_ns": [round(r.for_s * 1e9) for r in rules],
                **{f"gop{j}": [r.guards[j].test[0] if j < len(r.guards) else None for r in rules]
                   for j in range(self._ng)},
                **{f"glevel{j}": [r.guards[j].test[1] if j < len(r.guards) else None
                                  for r in rules] for j in range(self._ng)},
            },
            schema_overrides={f"glevel{j}": pl.Float64 for j in range(self._ng)},
        )  # fmt: skip

    def _plan(self, pairs: pl.DataFrame) -> pl.DataFrame:
        rows = []
        for kind, field in pairs.iter_rows():
            plan = self._plans.get((kind, field))
            if plan is None:
                plan = []
                for i, (r, p) in enumerate(zip(self.rules, self._pat)):
                    star = p.match(field) if r.kind == kind else None
                    if star is not None:
                        gs = [g.fill(star) for g in self._gpat[i]]
                        plan.append((i, *gs, *[None] * (self._ng - len(gs))))
                self._plans[(kind, field)] = plan
            rows.extend((kind, field, *p) for p in plan)
        return pl.DataFrame(
            rows, schema={"kind": pl.String, "field": pl.String, "rule": pl.Int32,
                          **{f"gfield{j}": pl.String for j in range(self._ng)}}, orient="row"
        )  # fmt: skip

    def process(self, frame: pl.DataFrame) -> list[Transition]:
        """Evaluate a batch; the transitions in row order, then rule order."""
        f = frame.with_row_index("row").filter(pl.col("value").is_not_nan().fill_null(False))
        f = f.join(self.ser.select(*_SER, "last_ts"), on=_SER, how="left")
        prev = pl.max_horizontal(pl.col("ts").cum_max().shift(1).over(_SER), pl.col("last_ts"))
        p = f.filter(prev.is_null() | (pl.col("ts") >= prev)).drop("last_ts")
        plan = self._plan(p.select("kind", "field").unique())
        e = p.join(plan, on=["kind", "field"], how="inner").join(self._params, on="rule")
        e = e.sort("row")
        guard_off = pl.lit(False)
        for j in range(self._ng):  # each guard: its series' value as of the row, or carried
            gf, gv = f"gfield{j}", f"gval{j}"
            g = p.select("row", "device_id", pl.col("field").alias(gf),
                         pl.col("value").alias(gv)).sort("row")  # fmt: skip
            e = e.join_asof(
                g, on="row", by=["device_id", gf], strategy="backward", check_sortedness=False
            )
            carried = self.ser.select(
                "device_id", pl.col("field").alias(gf), pl.col("last_val").alias(gv + "c")
            )
            e = e.join(carried, on=["device_id", gf], how="left")
            gval, op, level = pl.coalesce(gv, gv + "c"), pl.col(f"gop{j}"), pl.col(f"glevel{j}")
            holds = (
                pl.when(op == "equals").then(gval == level)
                .when(op == "above").then(gval > level)
                .otherwise(gval < level)
            )  # fmt: skip
            guard_off = guard_off | (pl.col(gf).is_not_null() & ~holds.fill_null(False))
        v = pl.col("value")
        crossing = pl.when(pl.col("above")).then(v > pl.col("set")).otherwise(v < pl.col("set"))
        release = pl.when(pl.col("above")).then(v < pl.col("clear")).otherwise(v > pl.col("clear"))
        e = e.with_columns(
            crossing=crossing & ~guard_off, release=release | guard_off
        ).join(self.sub, on=_SUB, how="left").with_columns(
            pl.col("latched0").fill_null(False), pl.col("active0").fill_null(False)
        ).sort("rule", "device_id", "field", "row")  # fmt: skip
        token = pl.when("crossing").then(True).when("release").then(False)
        e = e.with_columns(latched=token.forward_fill().over(_SUB).fill_null(pl.col("latched0")))
        e = e.with_columns(
            prev_latched=pl.col("latched").shift(1).over(_SUB).fill_null(pl.col("latched0"))
        )
        e = e.with_columns(start=pl.col("latched") & ~pl.col("prev_latched"))
        e = e.with_columns(run=pl.col("start").cast(pl.Int32).cum_sum().over(_SUB))
        carried_run = (pl.col("run") == 0) & pl.col("active0")
        e = e.with_columns(
            since=pl.when(pl.col("run") == 0)
            .then(pl.col("since0"))
            .otherwise(pl.when("start").then(pl.col("ts")).forward_fill().over(_SUB))
        )
        eligible = pl.col("latched") & (pl.col("ts") - pl.col("since") >= pl.col("for_ns"))
        e = e.with_columns(eligible=eligible.fill_null(False))
        e = e.with_columns(
            raise_=pl.col("eligible")
            & (pl.col("eligible").cast(pl.Int32).cum_sum().over(*_SUB, "run") == 1)
            & ~carried_run
        )
        e = e.with_columns(
            had=(pl.col("raise_").cast(pl.Int32).cum_sum().over(*_SUB, "run") > 0) | carried_run
        )
        e = e.with_columns(clear_=~pl.col("latched") & pl.col("prev_latched") & pl.col("had"))
        last = e.group_by(_SUB).agg(pl.all().last())
        self.sub = pl.concat(
            [
                self.sub.join(last.select(_SUB), on=_SUB, how="anti"),
                last.select(
                    *_SUB,
                    pl.col("latched").alias("latched0"),
                    pl.when("latched").then(pl.col("since")).alias("since0"),
                    (pl.col("latched") & pl.col("had")).alias("active0"),
                ),
            ]
        )
        upd = p.group_by(_SER).agg(
            pl.col("ts").last().alias("last_ts"), pl.col("value").last().alias("last_val")
        )
        self.ser = pl.concat([self.ser.join(upd.select(_SER), on=_SER, how="anti"), upd])
        out = e.filter(pl.col("raise_") | pl.col("clear_")).sort("row", "rule")
        res = []
        for rule, dev, field, ts, val, raised in out.select(
            "rule", "device_id", "field", "ts", "value", "raise_"
        ).iter_rows():
            r = self.rules[rule]
            res.append(
                Transition(
                    r.id, dev, subject_of(dev, field, "*" in r.field), field,
                    "raise" if raised else "clear", ts, val,
                    float(r.set if raised else r.clear),  # type: ignore[arg-type]
                )
            )  # fmt: skip
        return res
