"""InfluxDB line protocol from telemetry frames, built with polars expressions.

Measurement and tag design (also what a Grafana user sees)::

    <kind>,device_id=<device_id> <field>=<value> <ts>
    dust_monitor,device_id=DM-0001 pm10=87.5 1763942400000000000

One measurement per device kind, one tag (``device_id``), one float field per telemetry
field name, nanosecond timestamps. ``SELECT mean("pm10") FROM "dust_monitor" WHERE
"device_id"='DM-0001' GROUP BY time(1h)`` is then the obvious query. Series cardinality
is the number of devices. Rows of one device at one instant land in the same point, and
rewriting a (device, field, ts) overwrites it: replays are harmless.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from ingest.frames import strings

__all__ = [
    "LINE",
    "encode_lines",
    "escape_tag",
    "line_chunks",
    "with_lines",
]

# Line-protocol escaping: measurements escape comma and space; tag keys/values and
# field keys also escape '='. Newlines would end the line, so they are escaped too
# (as influxdb-client does).
_CONTROL = (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_MEASUREMENT_CHARS = ", "
_TAG_CHARS = ",= "


def _escape(expr: pl.Expr, chars: str) -> pl.Expr:
    for ch in chars:
        expr = expr.str.replace_all(ch, "\\" + ch, literal=True)
    for raw, esc in _CONTROL:
        expr = expr.str.replace_all(raw, esc, literal=True)
    return expr


def _special(chars: str) -> str:
    """A regex matching any character that ``chars`` escaping would change."""
    return "[" + "".join(re.escape(c) for c in chars + "".join(r for r, _ in _CONTROL)) + "]"


def escape_tag(expr: pl.Expr) -> pl.Expr:
    """Escape a tag key, tag value or field key column."""
    return _escape(expr, _TAG_CHARS)


_NAMES = {"kind": _MEASUREMENT_CHARS, "device_id": _TAG_CHARS, "field": _TAG_CHARS}
_SPECIAL = {name: _special(chars) for name, chars in _NAMES.items()}


#: Optional column of a frame: its rows' lines encoded ahead (:func:`with_lines`),
#: null where the value is not finite. :func:`line_chunks` sends it as it is.
LINE = "_line"


def _line(frame: pl.DataFrame) -> pl.Expr:
    # Escaping costs six string passes per column, two thirds of the encoding, and
    # names almost never need it: a scan of each column's distinct names finds out which
    # do (half the cost of scanning every row).
    special = frame.select(
        pl.col(name).unique().cast(pl.Utf8).str.contains(pattern).any()
        for name, pattern in _SPECIAL.items()
    ).row(0)
    names = {
        name: _escape(pl.col(name), _NAMES[name]) if hit else pl.col(name)
        for name, hit in zip(_SPECIAL, special)
    }
    return pl.concat_str(
        names["kind"],
        pl.lit(",device_id="),
        names["device_id"],
        pl.lit(" "),
        names["field"],
        pl.lit("="),
        pl.col("value").cast(pl.Utf8),
        pl.lit(" "),
        pl.col("ts").cast(pl.Utf8),
    ).alias(LINE)


def encode_lines(frame: pl.DataFrame) -> pl.Series:
    """One line-protocol line per row with a finite value (a Utf8 series)."""
    if LINE in frame.columns:
        return frame.get_column(LINE).drop_nulls()
    return (
        frame.lazy().filter(pl.col("value").is_finite()).select(_line(frame)).collect().to_series()
    )


def with_lines(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its line protocol in :data:`LINE` (a thread other than the writer's
    can then encode while the writer keeps InfluxDB's connections busy).

    The names may come as categorical codes (``frames.coded``): which need escaping is
    then found per distinct code, not per row. They come back as strings.
    """
    finite = pl.col("value").is_finite()
    line = _line(frame)
    return strings(frame).with_columns(pl.when(finite).then(line))


def line_chunks(frame: pl.DataFrame, size: int = 5000) -> Iterator[str]:
    """Line protocol for the frame in request bodies of at most ``size`` lines.

    Unless it was encoded ahead, the first body is encoded on its own, so it is on the
    wire while the rest of the frame is encoded in one go (InfluxDB would otherwise wait
    for the whole encoding; encoding every body apart costs a third more CPU).
    """
    parts = (frame,) if LINE in frame.columns else (frame.slice(0, size), frame.slice(size))
    for part in parts:
        lines = encode_lines(part)
        for start in range(0, lines.len(), size):
            # str.join in polars keeps the concatenation in Rust.
            yield lines.slice(start, size).str.join("\n").item()
