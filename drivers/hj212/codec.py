"""Pure codec of HJ 212-2017 frames (污染物在线监控系统数据传输标准).

    ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\\r\\n
    ^^ ^^^^ data segment (length given in the 4 digits) ..................................... ^^^^ CRC  ^^^^ CRLF

The CRC is the standard's own CRC16 (register 0xFFFF, polynomial 0xA001, but each byte is
XORed into the register *after shifting it right by 8*, unlike the Modbus CRC), computed
over the data segment and written as 4 hex digits. The example above, printed in the
standard, has CRC 1C80; a test checks it.

Flag bits: bit 0 (A) = the sender wants a reply, bit 1 (D) = packetised (PNUM/PNO present),
bits 2..7 = protocol version (1 for 2017, so ``Flag=4`` or ``Flag=5`` with ack).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "FrameError",
    "Hj212Frame",
    "crc16",
    "decode_frame",
    "encode_frame",
    "build_reply",
    "DATA_CNS",
    "FLAG_ACK",
    "parse_number",
]

FLAG_ACK = 0x01  # A bit: the sender asks for a reply
FLAG_PACKET = 0x02  # D bit: split into packets, PNUM/PNO in the header
DATA_CNS = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}  # CN -> value suffix
_MAX_DATA = 9999  # the length field has four digits
_REQUIRED = ("ST", "CN", "MN")
_NUMERIC = frozenset({"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax"})


class FrameError(ValueError):
    """A frame that is not valid HJ 212-2017; the message says exactly why."""


@dataclass(frozen=True)
class Hj212Frame:
    """One decoded frame: header fields, CP fields and per-pollutant items."""

    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: int
    pnum: int | None = None
    pno: int | None = None
    cp: dict[str, str] = field(default_factory=dict)  # plain CP fields, e.g. DataTime
    items: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> {Rtd: .., Flag: ..}

    @property
    def wants_ack(self) -> bool:
        """True when the sender asked for a reply (Flag bit A)."""
        return bool(self.flag & FLAG_ACK)

    @property
    def version(self) -> int:
        """Protocol version from Flag bits 2..7 (1 = HJ 212-2017)."""
        return self.flag >> 2

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for the CLI."""
        return {
            "qn": self.qn,
            "st": self.st,
            "cn": self.cn,
            "pw": self.pw,
            "mn": self.mn,
            "flag": self.flag,
            "wants_ack": self.wants_ack,
            "version": self.version,
            "pnum": self.pnum,
            "pno": self.pno,
            "cp": dict(self.cp),
            "items": {k: dict(v) for k, v in self.items.items()},
        }


def crc16(data: bytes) -> int:
    """The HJ 212-2017 CRC16 of a data segment."""
    reg = 0xFFFF
    for b in data:
        reg = (reg >> 8) ^ b
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


def parse_number(text: str, what: str) -> float:
    """A finite decimal number; FrameError names the member otherwise."""
    try:
        v = float(text)
    except ValueError:
        raise FrameError(f"bad number for {what}: {text!r}") from None
    # float() also takes "nan", "inf", "1_0"; none of them is a measurement.
    if not math.isfinite(v) or "_" in text or text.strip() != text:
        raise FrameError(f"bad number for {what}: {text!r}")
    return v


def _split_cp(body: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    plain: dict[str, str] = {}
    items: dict[str, dict[str, str]] = {}
    for group in body.split(";"):
        for member in group.split(","):
            if not member:
                continue
            key, eq, value = member.partition("=")
            if not eq or not key:
                raise FrameError(f"CP member {member!r} is not key=value")
            code, dash, suffix = key.partition("-")
            if dash and code and suffix:
                if suffix in _NUMERIC:
                    parse_number(value, key)
                items.setdefault(code, {})[suffix] = value
            else:
                plain[key] = value
    return plain, items


def _header(head: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in head.split(";"):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise FrameError(f"header field {part!r} is not key=value")
        out[key] = value
    return out


def _int_field(fields: dict[str, str], key: str) -> int | None:
    if key not in fields:
        return None
    v = fields[key]
    if not v.isascii() or not v.isdigit():
        raise FrameError(f"bad number for {key}: {v!r}")
    return int(v)


def decode_data(data: str) -> Hj212Frame:
    """Decode the data segment alone (no header, length or CRC)."""
    start = data.find("CP=&&")
    if start < 0:
        raise FrameError("missing CP=&&...&&")
    end = data.rfind("&&")
    if end < start + 5:
        raise FrameError("CP not closed with &&")
    if data[end + 2 :]:
        raise FrameError(f"text after CP: {data[end + 2 :]!r}")
    head = data[:start]
    if head and not head.endswith(";"):
        raise FrameError("CP must follow a ';'")
    fields = _header(head)
    missing = [k for k in _REQUIRED if not fields.get(k)]
    if missing:
        raise FrameError(f"missing header field(s): {', '.join(missing)}")
    flag = _int_field(fields, "Flag")
    plain, items = _split_cp(data[start + 5 : end])
    return Hj212Frame(
        qn=fields.get("QN", ""),
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields.get("PW", ""),
        mn=fields["MN"],
        flag=0 if flag is None else flag,
        pnum=_int_field(fields, "PNUM"),
        pno=_int_field(fields, "PNO"),
        cp=plain,
        items=items,
    )


def decode_frame(raw: bytes | str) -> Hj212Frame:
    """Decode one whole frame (``##`` to CRLF); FrameError with the exact reason."""
    buf = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if not buf.startswith(b"##"):
        raise FrameError(f"bad header: expected '##', got {buf[:2]!r}")
    digits = buf[2:6]
    if len(digits) < 4 or not digits.isdigit():
        raise FrameError(f"bad header: data length {digits!r} is not 4 digits")
    length = int(digits)
    if not buf.endswith(b"\r\n"):
        raise FrameError("frame does not end with CRLF")
    got_len = len(buf) - 6 - 4 - 2
    if got_len != length:
        raise FrameError(f"length mismatch: header says {length}, data segment is {got_len}")
    data = buf[6 : 6 + length]
    crc_text = buf[6 + length : 6 + length + 4]
    try:
        got_crc = int(crc_text.decode("ascii"), 16)
        if len(crc_text) != 4 or not all(c in b"0123456789abcdefABCDEF" for c in crc_text):
            raise ValueError
    except (UnicodeDecodeError, ValueError):
        raise FrameError(f"bad CRC field {crc_text!r}: not 4 hex digits") from None
    want = crc16(data)
    if got_crc != want:
        raise FrameError(f"bad CRC: expected {want:04X}, got {crc_text.decode('ascii')}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"data segment is not UTF-8: {exc.reason} at {exc.start}") from None
    return decode_data(text)


def encode_frame(data: str) -> bytes:
    """Wrap a data segment into a whole frame with length, CRC and CRLF."""
    body = data.encode("utf-8")
    if len(body) > _MAX_DATA:
        raise FrameError(f"data segment of {len(body)} bytes exceeds {_MAX_DATA}")
    return b"##%04d" % len(body) + body + b"%04X\r\n" % crc16(body)


def build_reply(frame: Hj212Frame) -> bytes | None:
    """The upper system's reply to a frame, or None when none is due.

    Data uploads (CN 2011/2051/2061/2031) whose Flag has the A bit get a data response
    (CN 9014, ST 91) carrying the same QN, PW and MN, with Flag 4 (2017, no ack wanted).
    """
    if not frame.wants_ack or frame.cn not in DATA_CNS:
        return None
    data = f"QN={frame.qn};ST=91;CN=9014;PW={frame.pw};MN={frame.mn};Flag=4;CP=&&&&"
    return encode_frame(data)
