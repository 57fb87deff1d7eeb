"""Pure Modbus value codec: 16-bit registers (or bits) in, canonical values out.

A 32-bit value ``0x41C80000`` (25.0 as float32) occupies two registers; the profile's
word and byte order say how the device lays them out::

    word_order big,    byte_order big     (ABCD)   regs = [0x41C8, 0x0000]
    word_order little, byte_order big     (CDAB)   regs = [0x0000, 0x41C8]
    word_order big,    byte_order little  (BADC)   regs = [0xC841, 0x0000]
    word_order little, byte_order little  (DCBA)   regs = [0x0000, 0xC841]

float64 works the same with four registers. The canonical value is
``raw * scale + offset``; booleans come out as 0.0 / 1.0.

:func:`block_decoder` is the hot path: it turns a whole read's registers into bytes
once and unpacks every point of it with a precompiled struct. Any layout is two
endiannesses: the registers are packed little-endian when word and byte order differ
(CDAB, BADC), and each value is read little-endian when the word order is little::

    ABCD  pack >H  read >     CDAB  pack <H  read <
    BADC  pack <H  read >     DCBA  pack >H  read <
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

__all__ = [
    "CodecError",
    "WIDTH",
    "decode_value",
    "encode_value",
    "decode_bits",
    "block_decoder",
    "BlockPoint",
]

#: Registers (or bits) one value of each type occupies.
WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}

_STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}


class CodecError(ValueError):
    """Registers that cannot be decoded (wrong count, out-of-range word, unknown type)."""


def _ordered(words: Sequence[int], word_order: str, byte_order: str) -> bytes:
    """Big-endian bytes of the value from the device's register layout."""
    regs = list(words)
    for w in regs:
        if type(w) is not int or not 0 <= w <= 0xFFFF:
            raise CodecError(f"register value {w!r} is not a 16-bit word")
    if byte_order == "little":
        regs = [((w & 0xFF) << 8) | (w >> 8) for w in regs]
    if word_order == "little":
        regs.reverse()
    return b"".join(w.to_bytes(2, "big") for w in regs)


def decode_value(
    words: Sequence[int],
    type_: str,
    *,
    word_order: str = "big",
    byte_order: str = "big",
    scale: float = 1.0,
    offset: float = 0.0,
) -> float | None:
    """The canonical value of one point; None for NaN/inf (no reading)."""
    width = WIDTH.get(type_)
    if width is None:
        raise CodecError(f"unknown type {type_!r}")
    if len(words) != width:
        raise CodecError(f"{type_} needs {width} register(s), got {len(words)}")
    if type_ == "bool":
        return 1.0 if _ordered(words, "big", byte_order) != b"\x00\x00" else 0.0
    raw = struct.unpack(_STRUCT[type_], _ordered(words, word_order, byte_order))[0]
    if not math.isfinite(raw):
        return None
    return raw * scale + offset


def encode_value(
    value: float,
    type_: str,
    *,
    word_order: str = "big",
    byte_order: str = "big",
    scale: float = 1.0,
    offset: float = 0.0,
) -> list[int]:
    """Registers for a canonical value (the inverse of :func:`decode_value`)."""
    if type_ not in WIDTH:
        raise CodecError(f"unknown type {type_!r}")
    if scale == 0:
        raise CodecError("scale 0 cannot be inverted")
    raw = (float(value) - offset) / scale
    if type_ == "bool":
        return [1 if raw else 0]
    if type_.startswith(("int", "uint")):
        if not math.isfinite(raw):
            raise CodecError(f"{value!r} is not a finite number")
        raw = round(raw)
    try:
        data = struct.pack(_STRUCT[type_], raw)
    except struct.error as exc:
        raise CodecError(f"{value!r} does not fit {type_}: {exc}") from None
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if word_order == "little":
        regs.reverse()
    if byte_order == "little":
        regs = [((w & 0xFF) << 8) | (w >> 8) for w in regs]
    return regs


def decode_bits(bits: Sequence[bool | int], scale: float = 1.0, offset: float = 0.0) -> float:
    """A coil or discrete input as 0/1 (scaled, for symmetry with registers)."""
    if len(bits) != 1:
        raise CodecError(f"a bit point needs exactly 1 bit, got {len(bits)}")
    return (1.0 if bits[0] else 0.0) * scale + offset


#: (type, first register inside the block, scale, offset) of one point of a block read.
BlockPoint = tuple[str, int, float, float]


def block_decoder(
    points: Sequence[BlockPoint], count: int, *, word_order: str = "big", byte_order: str = "big"
) -> Callable[[Sequence[int]], list[float | None]]:
    """A function decoding ``count`` registers to the points' values (same results as
    :func:`decode_value` per point); it raises CodecError for registers that are not
    16-bit words or too few of them."""
    block = struct.Struct(f"{'<' if word_order != byte_order else '>'}{count}H")
    read = "<" if word_order == "little" else ">"
    fields = []  # (struct code, first byte) in block order
    for type_, start, _scale, _offset in points:
        if type_ not in WIDTH:
            raise CodecError(f"unknown type {type_!r}")
        if start < 0 or start + WIDTH[type_] > count:
            raise CodecError(f"{type_} at {start} does not fit a block of {count} registers")
        fields.append(("H" if type_ == "bool" else _STRUCT[type_][1], 2 * start))
    order = sorted(range(len(fields)), key=lambda i: fields[i][1])
    # Points that do not overlap unpack in one call, holes skipped as pad bytes.
    fmt, pos = read, 0
    for i in order:
        code, first = fields[i]
        if first < pos:
            fmt = ""
            break
        fmt += "x" * (first - pos) + code
        pos = first + struct.calcsize(read + code)
    whole = struct.Struct(fmt) if fmt else None
    singles = [(struct.Struct(read + code), first) for code, first in fields]
    back = sorted(range(len(order)), key=order.__getitem__)  # block order -> point order
    in_order = order == list(range(len(order)))
    conv = [(t == "bool", scale, offset) for t, _s, scale, offset in points]
    isfinite = math.isfinite

    def decode(words: Sequence[int]) -> list[float | None]:
        if len(words) < count:
            raise CodecError(f"block of {count} registers, got {len(words)}")
        try:
            buf = block.pack(*words[:count])
        except struct.error as exc:
            raise CodecError(f"not 16-bit words: {exc}") from None
        if whole is not None:
            raws = whole.unpack_from(buf)
            if not in_order:
                raws = [raws[j] for j in back]
        else:
            raws = [st.unpack_from(buf, first)[0] for st, first in singles]
        return [
            (1.0 if raw else 0.0) if is_bool else (raw * scale + offset if isfinite(raw) else None)
            for raw, (is_bool, scale, offset) in zip(raws, conv)
        ]

    return decode
