"""Shared wire contracts of Rongguan: telemetry, alarms, commands, topics and config.

Everything may import this package; it imports nothing heavy (no polars, numpy or
network libraries), so a field tool can load it in milliseconds.
"""
