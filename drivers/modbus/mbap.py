"""Pure Modbus TCP framing (MBAP) and PDUs: bytes in, values out, no I/O.

Every Modbus TCP message is a 7-byte MBAP header and a PDU (Modbus Messaging on TCP/IP
Implementation Guide v1.0b, §3.1; Modbus Application Protocol v1.1b3, §6)::

    +---------+---------+---------+------+------+--------------------------+
    | tid  u16| pid  u16| len  u16| unit | fc   | data                     |
    +---------+---------+---------+------+------+--------------------------+
      echoed    always 0  unit+PDU  1..247  function code, 0x80 set on an exception

    read request   fc 1/2/3/4   address u16, count u16
    read answer    fc 1/2       byte count u8, bits LSB first
                   fc 3/4       byte count u8, count × u16 big-endian
    write coil     fc 5         address u16, 0xFF00 (on) / 0x0000 (off); answer echoes it
    write regs     fc 16        address u16, count u16, byte count u8, values; answer
                                echoes address and count
    exception      fc | 0x80    exception code u8
"""

from __future__ import annotations

import struct

__all__ = [
    "FrameError",
    "ExceptionResponse",
    "READ_FC",
    "MAX_READ",
    "frame",
    "read_request",
    "write_coil_request",
    "write_registers_request",
    "split",
    "parse_read",
    "parse_write",
]

#: table -> read function code
READ_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
#: largest read the spec allows per function code (bits for 1/2, registers for 3/4)
MAX_READ = {1: 2000, 2: 2000, 3: 125, 4: 125}
_HEADER = struct.Struct(">HHHB")
_MAX_LEN = 254  # unit + the largest PDU (253 bytes)


class FrameError(ValueError):
    """Bytes that are not a Modbus TCP frame or not the answer asked for."""


class ExceptionResponse(Exception):
    """The device answered with a Modbus exception (``code``, e.g. 2: illegal data address)."""

    def __init__(self, function: int, code: int):
        self.function, self.code = function, code
        super().__init__(f"exception {code} to function {function}")


def frame(tid: int, unit: int, pdu: bytes) -> bytes:
    """A complete Modbus TCP message."""
    return _HEADER.pack(tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def read_request(table: str, address: int, count: int) -> bytes:
    """PDU of a read; ValueError for an unknown table or a count the spec forbids."""
    fc = READ_FC.get(table)
    if fc is None:
        raise ValueError(f"unknown table {table!r}")
    if not 1 <= count <= MAX_READ[fc] or not 0 <= address <= 0xFFFF:
        raise ValueError(f"cannot read {count} from {table} address {address}")
    return struct.pack(">BHH", fc, address, count)


def write_coil_request(address: int, on: bool) -> bytes:
    """PDU of a single coil write (fc 5)."""
    return struct.pack(">BHH", 5, address, 0xFF00 if on else 0)


def write_registers_request(address: int, values: list[int]) -> bytes:
    """PDU of a multiple register write (fc 16)."""
    if not 1 <= len(values) <= 123:
        raise ValueError(f"cannot write {len(values)} registers in one request")
    return struct.pack(f">BHHB{len(values)}H", 16, address, len(values), 2 * len(values), *values)


def split(buf: bytes | bytearray) -> tuple[list[tuple[int, int, bytes]], int]:
    """Complete messages at the start of ``buf`` as (tid, unit, pdu), and bytes used.

    A header that cannot be Modbus (protocol id not 0, impossible length) raises
    FrameError: the stream cannot be resynchronised and the connection must go.
    """
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while len(buf) - pos >= 7:
        tid, pid, length, unit = _HEADER.unpack_from(buf, pos)
        if pid != 0 or not 2 <= length <= _MAX_LEN:
            raise FrameError(f"not a Modbus TCP header: protocol {pid}, length {length}")
        end = pos + 6 + length
        if end > len(buf):
            break
        out.append((tid, unit, bytes(buf[pos + 7 : end])))
        pos = end
    return out, pos


def _check_function(pdu: bytes, fc: int) -> None:
    if not pdu:
        raise FrameError("empty PDU")
    if pdu[0] == fc | 0x80:
        if len(pdu) != 2:
            raise FrameError(f"exception answer of {len(pdu)} bytes")
        raise ExceptionResponse(fc, pdu[1])
    if pdu[0] != fc:
        raise FrameError(f"answer to function {pdu[0]}, asked {fc}")


def parse_read(pdu: bytes, fc: int, count: int) -> list[int] | list[bool]:
    """Registers (fc 3/4) or bits (fc 1/2) of a read answer; ExceptionResponse, FrameError."""
    _check_function(pdu, fc)
    if len(pdu) < 2 or pdu[1] != len(pdu) - 2:
        raise FrameError(f"byte count {pdu[1] if len(pdu) > 1 else None} of {len(pdu) - 2} bytes")
    data = pdu[2:]
    if fc in (1, 2):
        if len(data) != (count + 7) // 8:
            raise FrameError(f"{len(data)} bytes for {count} bits")
        return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]
    if len(data) != 2 * count:
        raise FrameError(f"{len(data)} bytes for {count} registers")
    return list(struct.unpack(f">{count}H", data))


def parse_write(pdu: bytes, request: bytes) -> None:
    """Check a write answer against its request (fc 5 echoes it, fc 16 echoes address/count)."""
    _check_function(pdu, request[0])
    want = request if request[0] == 5 else request[:5]
    if pdu != want:
        raise FrameError(f"write answer {pdu.hex()} does not echo {want.hex()}")
