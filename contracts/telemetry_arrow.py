"""Telemetry batch wire format v2: one Arrow IPC stream per batch.

The columns are those of :data:`contracts.telemetry.COLUMNS`; device_id, kind and field
are dictionary-encoded (each name travels once per batch), ts is int64 (ns since epoch,
UTC) and value float64 (null: missing or non-finite). The agent id, the sequence number
and the send time are schema metadata::

    schema  device_id: dictionary<int32, utf8>  kind: dictionary<int32, utf8>
            ts: int64  field: dictionary<int32, utf8>  value: float64
    meta    rongguan.wire=2  agent=agent-1  seq=7  sent_ns=...

An Arrow IPC stream starts with the continuation marker ``FF FF FF FF``, a v1 JSON
batch with ``{``: :func:`wire_version` tells them apart from the first bytes, so
receivers accept both. Decoding yields Arrow columns that a data-frame library takes
over without per-row Python (``polars.from_arrow``).

pyarrow is imported here only; ``contracts`` itself stays light (importing
:mod:`contracts.telemetry` does not load this module).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

from contracts.telemetry import COLUMNS, BatchError, TelemetryBatch

__all__ = [
    "WIRE_V2",
    "ARROW_SCHEMA",
    "wire_version",
    "encode_batch",
    "decode_table",
    "decode_batch",
]

WIRE_V2 = 2
_MAGIC = b"\xff\xff\xff\xff"  # Arrow IPC continuation marker: every stream message starts so
_DICT = pa.dictionary(pa.int32(), pa.string())

#: The v2 schema (without metadata) as the agent sends it.
ARROW_SCHEMA = pa.schema(
    [
        ("device_id", _DICT),
        ("kind", _DICT),
        ("ts", pa.int64()),
        ("field", _DICT),
        ("value", pa.float64()),
    ]
)
_TEXT = ("device_id", "kind", "field")
_NUMBERS = {"ts": pa.int64(), "value": pa.float64()}
# Plain and dictionary-encoded strings are both accepted from third-party senders.
_STRINGS = (pa.string(), pa.large_string(), pa.string_view())


def wire_version(payload: bytes) -> int:
    """1 for a JSON batch, 2 for an Arrow IPC stream (sniffed; not a full check)."""
    return WIRE_V2 if bytes(payload[:4]) == _MAGIC else 1


def encode_batch(batch: TelemetryBatch) -> bytes:
    """Serialise a batch as wire v2 (an Arrow IPC stream of one record batch)."""
    values = [None if v is None or not math.isfinite(v) else float(v) for v in batch.value]
    arrays = [
        pa.array(batch.device_id, pa.string()).dictionary_encode(),
        pa.array(batch.kind, pa.string()).dictionary_encode(),
        pa.array(batch.ts, pa.int64()),
        pa.array(batch.field_name, pa.string()).dictionary_encode(),
        pa.array(values, pa.float64()),
    ]
    meta = {
        "rongguan.wire": str(WIRE_V2),
        "agent": batch.agent,
        "seq": str(int(batch.seq)),
        "sent_ns": str(int(batch.sent_ns)),
    }
    table = pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA.with_metadata(meta))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(
    payload: bytes, *, dictionaries: bool = False
) -> tuple[pa.Table, dict[str, str | int]]:
    """A v2 payload as a table (text columns as plain strings) and its metadata.

    With ``dictionaries``, device_id, kind and field come back dictionary-encoded as
    :data:`ARROW_SCHEMA` has them (plain strings from third parties are encoded), their
    indices and UTF-8 checked: a receiver can then work on the codes. The metadata has ``agent``
    (str), ``seq`` and ``sent_ns`` (int). Raises :class:`BatchError` naming what is
    wrong (not Arrow, wrong columns or types, an index outside its dictionary, text that
    is not UTF-8 when ``dictionaries``, missing metadata).
    """
    if wire_version(payload) != WIRE_V2:
        raise BatchError("not an Arrow IPC stream (wire v2 starts with FF FF FF FF)")
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(payload))
        table = reader.read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise BatchError(f"bad Arrow stream: {_first_line(exc)}") from None
    meta = _metadata(table.schema)
    if tuple(table.column_names) != COLUMNS:
        raise BatchError(f"columns must be {list(COLUMNS)}, got {table.column_names}")
    cols = [_column(name, table.column(name), dictionaries) for name in COLUMNS]
    try:
        out = pa.Table.from_arrays(cols, names=list(COLUMNS))
    except (pa.ArrowException, ValueError) as exc:
        raise BatchError(f"bad column content: {_first_line(exc)}") from None
    return out, meta


def decode_batch(payload: bytes) -> TelemetryBatch:
    """Either wire version as a :class:`TelemetryBatch` (for consumers that loop over rows)."""
    if wire_version(payload) != WIRE_V2:
        return TelemetryBatch.decode(payload)
    table, meta = decode_table(payload)
    batch = TelemetryBatch(agent=str(meta["agent"]), seq=int(meta["seq"]))
    batch.sent_ns = int(meta["sent_ns"])
    batch.device_id = table.column("device_id").to_pylist()
    batch.kind = table.column("kind").to_pylist()
    batch.ts = table.column("ts").to_pylist()
    batch.field_name = table.column("field").to_pylist()
    batch.value = table.column("value").to_pylist()
    return batch


def _column(name: str, col: pa.ChunkedArray, dictionaries: bool) -> pa.ChunkedArray:
    """One column checked against the schema; text as plain strings or as :data:`_DICT`."""
    typ = col.type
    is_text = typ in _STRINGS
    if name not in _TEXT:
        if typ != _NUMBERS[name]:
            raise BatchError(f"{name}: type {typ} not allowed in wire v2")
        return col
    if not (is_text or pa.types.is_dictionary(typ) and typ.value_type in _STRINGS):
        raise BatchError(f"{name}: type {typ} not allowed in wire v2")
    try:
        if not dictionaries:
            return pc.cast(col, pa.string())  # checks dictionary indices as it goes
        for chunk in col.chunks:
            # Reading a stream checks neither indices nor UTF-8, and the codes are used as
            # they are: a corrupt chunk refuses the batch here.
            chunk.validate(full=True)
        if is_text:
            return pc.dictionary_encode(pc.cast(col, pa.string()))
        return col if typ == _DICT else pc.cast(col, _DICT)
    except (pa.ArrowException, ValueError) as exc:
        raise BatchError(f"{name}: bad content: {_first_line(exc)}") from None


def _metadata(schema: pa.Schema) -> dict[str, str | int]:
    raw = schema.metadata or {}
    meta = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}
    if meta.get("rongguan.wire") != str(WIRE_V2):
        raise BatchError(f"unsupported wire version {meta.get('rongguan.wire')!r}")
    try:
        return {
            "agent": meta["agent"],
            "seq": int(meta["seq"]),
            "sent_ns": int(meta.get("sent_ns", "0")),
        }
    except (KeyError, ValueError) as exc:
        raise BatchError(f"missing or bad metadata: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
