"""The edge agent: device supervision, batching, store-and-forward, commands, health."""

from __future__ import annotations

from edge_agent.agent import EdgeAgent
from edge_agent.buffer import DiskBuffer

__all__ = ["EdgeAgent", "DiskBuffer"]
