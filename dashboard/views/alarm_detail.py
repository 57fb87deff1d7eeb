"""The alarm console's detail pane: the selected alarm's facts, its case, its storm group and
what happened to it (transitions from the store, operators' actions and comments)."""

from __future__ import annotations

import html
from typing import Any

from contracts.alarms import AlarmEvent
from dashboard.alarmgroups import AlarmGroup, group_label
from dashboard.i18n import tr, tr_opt
from dashboard.views._live import fmt_time
from dashboard.views.wall import SEVERITY_COLOURS

__all__ = ["detail_html", "timeline", "empty_detail_html"]

_E = html.escape


def timeline(alarm: AlarmEvent, records: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(ts_ns, what, who/text) newest first: raised, state and case changes, operators' notes.

    ``records`` are the alarm's transitions from the store (``ts``, ``state``,
    ``condition_active``, ``case_no``, ``case_status``), oldest first.
    """
    out: list[tuple[int, str, str]] = [(alarm.raised_ns, "ev_raised", "")]
    prev: dict[str, Any] = {"state": "open", "condition_active": True, "case": None}
    for r in records:
        ts = int(r.get("ts") or 0)
        if r.get("condition_active") is False and prev["condition_active"]:
            out.append((int(r.get("cleared_ns") or ts), "ev_cleared", ""))
        elif r.get("condition_active") and not prev["condition_active"]:
            out.append((ts, "ev_reraised", ""))
        if r.get("state") and r["state"] != prev["state"]:
            out.append((ts, "st_" + r["state"], ""))
        case = (r.get("case_no"), r.get("case_status"))
        if case[0] and case != prev["case"]:
            out.append((ts, "ev_case", f"{case[0]} {case[1] or ''}".strip()))
        prev = {"state": r.get("state") or prev["state"], "case": case if case[0] else prev["case"],
                "condition_active": r.get("condition_active") is not False}  # fmt: skip
    for c in alarm.extra.get("comments", []):
        if isinstance(c, dict):
            who = str(c.get("user") or "")
            text = str(c.get("text") or "")
            out.append((int(c.get("ts_ns") or 0), str(c.get("action") or "comment"),
                        f"{who}: {text}" if text else who))  # fmt: skip
    seen: set[tuple[int, str, str]] = set()
    uniq = [e for e in out if not (e in seen or seen.add(e))]
    return sorted(uniq, key=lambda e: -e[0])


def _fact(label: str, value: Any, cls: str = "") -> str:
    shown = "—" if value in (None, "") else _E(str(value))
    return f'<div class="rg-fact {cls}"><span>{_E(label)}</span><b>{shown}</b></div>'


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def empty_detail_html(lang: str) -> str:
    """What the pane says before an alarm is selected."""
    return f'<div class="rg-detail-empty">{tr("no_selection", lang)}</div>'


def detail_html(
    alarm: AlarmEvent,
    group: AlarmGroup | None,
    events: list[tuple[int, str, str]],
    lang: str,
    district: str = "",
) -> str:
    """The detail pane for one alarm (``group``: the storm it belongs to, if any)."""
    colour = SEVERITY_COLOURS.get(alarm.severity.value, "#adb5bd")
    name = alarm.extra.get("device_name") or alarm.device_id
    head = (
        f'<div class="rg-detail-head" data-alarm="{_E(alarm.alarm_id)}">'
        f'<span class="rg-sev" style="background:{colour}">{tr(alarm.severity.value, lang)}</span> '
        f"<b>{_E(alarm.message or alarm.rule_id)}</b></div>"
        f'<div class="rg-detail-sub">{_E(str(name))} ({_E(alarm.device_id)}) · '
        f"{_E(district or '—')} · {tr(alarm.domain + '_d', lang)} · {_E(alarm.rule_id)}</div>"
    )
    flags = []
    if alarm.extra.get("flapping"):
        flags.append(tr("flapping", lang))
    if alarm.extra.get("reopened"):
        flags.append(tr("reopened", lang, n=alarm.extra["reopened"]))
    facts = "".join([
        _fact(tr("state", lang), tr("st_" + alarm.state.value, lang)),
        _fact(tr("condition", lang), tr("cond_on" if alarm.condition_active else "cond_off", lang)),
        _fact(tr("raised", lang), fmt_time(alarm.raised_ns)),
        _fact(tr("updated_at", lang), fmt_time(alarm.updated_ns)),
        _fact(tr("cleared", lang), fmt_time(alarm.cleared_ns)),
        _fact(tr("subject", lang), alarm.subject, "rg-wide"),
        _fact(tr("value", lang), _num(alarm.value)),
        _fact(tr("threshold", lang), _num(alarm.threshold)),
        _fact(tr("assignee", lang), alarm.assignee),
        _fact(tr("flags", lang), " · ".join(flags)),
    ])  # fmt: skip
    case = (
        f'<div class="rg-detail-case">{_fact(tr("case_no", lang), alarm.case_no, "rg-case-no")}'
        f"{_fact(tr('case_status', lang), tr_opt('case_', alarm.case_status, lang))}</div>"
    )
    parts = [head, f'<div class="rg-facts">{facts}</div>', case]
    if group is not None and group.size > 1:
        parts.append(_group_html(alarm, group, lang))
    rows = "".join(
        f"<tr><td>{fmt_time(ts)}</td><td>{_E(tr(what, lang))}</td><td>{_E(text)}</td></tr>"
        for ts, what, text in events
    )
    parts.append(
        f'<div class="rg-h3">{tr("timeline", lang)}</div><table class="rg-timeline">{rows}</table>'
    )
    return f'<div class="rg-detail">{"".join(parts)}</div>'


def _group_html(alarm: AlarmEvent, group: AlarmGroup, lang: str) -> str:
    label = group_label(group, lang)
    rows = []
    for m in group.members:
        mark = ' class="rg-current"' if m.alarm_id == alarm.alarm_id else ""
        role = tr("parent", lang) if m is group.head else "↳"
        rows.append(
            f'<tr{mark} data-alarm="{_E(m.alarm_id)}"><td>{_E(role)}</td><td>{_E(m.subject)}</td>'
            f"<td>{tr(m.severity.value, lang)}</td><td>{tr('st_' + m.state.value, lang)}</td>"
            f"<td>{fmt_time(m.raised_ns)}</td></tr>"
        )
    return (
        f'<div class="rg-h3">{tr("members", lang)} · {_E(label)}</div>'
        f'<table class="rg-members">{"".join(rows)}</table>'
    )
