"""Rules: threshold rules over telemetry (numba kernels), the alarm lifecycle and case routing.

Import the submodules you need (``rules.engine``, ``rules.alarms``, ``rules.service``);
this package stays light so the dashboard can read alarms without loading numba.
"""

from __future__ import annotations

__all__: list[str] = []
