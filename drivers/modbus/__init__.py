"""Modbus TCP driver: profile points, planned reads, shared connections per endpoint."""

from __future__ import annotations

from drivers.modbus.client import ModbusDriver
from drivers.modbus.codec import CodecError, decode_value, encode_value
from drivers.modbus.planner import ReadRequest, plan

__all__ = ["ModbusDriver", "CodecError", "decode_value", "encode_value", "ReadRequest", "plan"]
