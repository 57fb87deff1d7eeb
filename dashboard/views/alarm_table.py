"""The alarm tables' rows and columns: one row per alarm, fixed column widths per language,
severity cells in their colour."""

from __future__ import annotations

from typing import Any

from bokeh.models import HTMLTemplateFormatter

from contracts.alarms import AlarmEvent, Severity
from dashboard.i18n import tr, tr_opt
from dashboard.views._live import fmt_time
from dashboard.views.wall import SEVERITY_COLOURS

__all__ = ["COLUMNS", "WIDTHS", "alarm_row", "severity_formatter"]

COLUMNS = ["alarm_id", "severity", "group", "domain", "device", "district", "message", "state",
           "raised", "updated_at", "case_no", "case_status"]  # fmt: skip
_TIME = "%m-%d %H:%M"
#: fixed widths; the message takes what is left (fit_columns: no sideways scrolling)
WIDTHS = {"zh": {"severity": 56, "group": 52, "domain": 52, "device": 92, "district": 76,
                 "state": 68, "raised": 100, "updated_at": 100, "case_no": 128,
                 "case_status": 68},
          "en": {"severity": 70, "group": 56, "domain": 66, "device": 92, "district": 76,
                 "state": 104, "raised": 100, "updated_at": 100, "case_no": 128,
                 "case_status": 86}}  # fmt: skip


def alarm_row(
    a: AlarmEvent | dict[str, Any], lang: str, district: str = "", group: str = ""
) -> dict[str, Any]:
    """One table row for an alarm (an event, or a history record as a dict)."""
    d = a.model_dump(mode="json") if isinstance(a, AlarmEvent) else a
    return {
        "alarm_id": d["alarm_id"], "severity": tr(d["severity"], lang), "group": group,
        "domain": tr(f"{d['domain']}_d", lang), "device": d["device_id"], "district": district,
        "message": d.get("message") or d["rule_id"], "state": tr("st_" + d["state"], lang),
        "raised": fmt_time(d.get("raised_ns"), _TIME),
        "updated_at": fmt_time(d.get("updated_ns") or d.get("ts"), _TIME),
        "case_no": d.get("case_no") or "", "case_status": tr_opt("case_", d.get("case_status"), lang),
    }  # fmt: skip


def severity_formatter(lang: str) -> HTMLTemplateFormatter:
    """Severity cells in their colour (the cell holds the translated name)."""
    cases = " : ".join(
        f"value == '{tr(s.value, lang)}' ? '{SEVERITY_COLOURS[s.value]}'" for s in Severity
    )
    return HTMLTemplateFormatter(
        template=f"<b style=\"color: <%= {cases} : '#dbe4f0' %>\"><%= value %></b>"
    )
