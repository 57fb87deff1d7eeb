"""Storm groups of alarms, as the rules' alarm book forms them, for display (pure functions).

The alarm book makes an alarm raised shortly after another of the same device (one
cabinet's circuits) or site the *child* of the first: the child carries
``extra.parent`` = the parent's id, the parent ``extra.children``. A control room wants
such a storm once — "Cabinet X: 6 circuits" — so the wall's ticker and the KPI counts show
groups, and the alarm console shows the parent with its children count, in the live list
and in the history (whose stored records carry the parent too).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contracts.alarms import AlarmEvent, Severity
from dashboard.i18n import tr

__all__ = [
    "AlarmGroup",
    "group_alarms",
    "group_label",
    "history_events",
    "severity_counts",
    "SEV_ORDER",
]

SEV_ORDER = {s.value: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class AlarmGroup:
    """A parent and the children shown with it (a lone alarm is a group of one)."""

    head: AlarmEvent
    children: tuple[AlarmEvent, ...] = ()

    @property
    def key(self) -> str:
        """The group's id: its parent's alarm id."""
        return str(self.head.extra.get("parent") or self.head.alarm_id)

    @property
    def size(self) -> int:
        """How many alarms the group shows."""
        return 1 + len(self.children)

    @property
    def members(self) -> tuple[AlarmEvent, ...]:
        """Head first, then the children by time raised."""
        return (self.head, *self.children)

    @property
    def severity(self) -> str:
        """The most severe member's severity."""
        return min((m.severity.value for m in self.members), key=lambda s: SEV_ORDER.get(s, 9))

    @property
    def raised_ns(self) -> int:
        """When the newest member was raised (a growing storm stays on top)."""
        return max(m.raised_ns for m in self.members)

    @property
    def updated_ns(self) -> int:
        """When a member last changed."""
        return max(m.updated_ns for m in self.members)


def group_alarms(alarms: list[AlarmEvent], by_update: bool = False) -> list[AlarmGroup]:
    """Alarms folded into their groups, most severe then newest first (``by_update``: the
    group changed last first, as a history reads).

    A child whose parent is not among ``alarms`` (resolved, or filtered out) stays with its
    siblings: the earliest of them heads the group.
    """
    by_key: dict[str, list[AlarmEvent]] = {}
    for a in alarms:
        by_key.setdefault(str(a.extra.get("parent") or a.alarm_id), []).append(a)
    groups = []
    for key, members in by_key.items():
        members.sort(key=lambda m: (m.alarm_id != key, m.raised_ns, m.alarm_id))
        groups.append(AlarmGroup(members[0], tuple(members[1:])))
    if by_update:
        groups.sort(key=lambda g: (-g.updated_ns, g.key))
    else:
        groups.sort(key=lambda g: (SEV_ORDER.get(g.severity, 9), -g.raised_ns, g.key))
    return groups


def history_events(records: Iterable[dict[str, Any]]) -> list[AlarmEvent]:
    """Stored alarm records (``ingest.store.ALARM_SCHEMA`` rows) as events to group and show:
    ``ts`` is the record's update time, ``parent`` its storm parent."""
    out = []
    for r in records:
        doc = {k: v for k, v in r.items() if k in _EVENT_FIELDS and v is not None}
        doc["updated_ns"] = r["ts"]
        doc["extra"] = json.loads(r.get("extra") or "{}")
        if r.get("parent"):  # sticky across the alarm's records, see ingest.store.alarm_frame
            doc["extra"]["parent"] = r["parent"]
        out.append(AlarmEvent.model_validate(doc))
    return out


_EVENT_FIELDS = frozenset(AlarmEvent.model_fields) - {"updated_ns", "extra"}


def severity_counts(groups: list[AlarmGroup]) -> dict[str, int]:
    """Groups per severity (each group once, at its most severe member's level)."""
    sev = Counter(g.severity for g in groups)
    return {s.value: sev.get(s.value, 0) for s in Severity}


def group_label(group: AlarmGroup, lang: str) -> str:
    """ "配电箱 X: 6 个回路告警" / "Cabinet X: 6 circuits" — or "" for a lone alarm."""
    if group.size < 2:
        return ""
    head = group.head
    devices = {m.device_id for m in group.members}
    if len(devices) == 1:
        name = head.extra.get("device_name") or head.device_id
        circuits = all(m.field.startswith("circuit") for m in group.members)
        key = "group_circuits" if circuits else "group_device"
        return tr(key, lang, name=name, n=group.size)
    site = next(
        (head.extra.get(k) for k in ("site_name", "site", "permit_no") if head.extra.get(k)),
        head.device_id,
    )
    return tr("group_site", lang, name=site, n=group.size, devices=len(devices))
