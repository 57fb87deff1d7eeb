"""The control-room look: one stylesheet, applied inside every HTML pane's shadow root."""

from __future__ import annotations

from typing import Any

import panel as pn

__all__ = ["PAGE_CSS", "PANE_CSS", "TABS_CSS", "TABLE_CSS", "TOGGLE_CSS", "html"]

#: Page-level CSS (outside the components' shadow roots).
PAGE_CSS = """
html, body { background: #0b1220 !important; color: #dbe4f0; margin: 0; }
.bk-tab { color: #dbe4f0 !important; }
.bk-tab.bk-active { background: #24324d !important; color: #ffffff !important; }
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
"""

#: CSS inside HTML panes.
PANE_CSS = """
:host { color: #dbe4f0; font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
a { color: #6fa0ff; }
.rg-title { font-size: 30px; font-weight: 700; letter-spacing: 2px; padding: 6px 12px; }
.rg-clock { font-size: 26px; font-variant-numeric: tabular-nums; padding: 8px 16px; color: #9fb0c8; }
.rg-nav { font-size: 16px; padding: 6px 12px; display: flex; gap: 18px; align-items: center; }
.rg-nav .rg-user { margin-left: auto; color: #9fb0c8; }
.rg-h2 { font-size: 22px; font-weight: 700; margin: 6px 0; }
.rg-h3 { font-size: 16px; font-weight: 700; margin: 6px 0; color: #9fb0c8; }
.rg-tiles { display: flex; gap: 12px; flex-wrap: nowrap; padding: 4px 8px; }
.rg-tile { background: #131d31; border: 1px solid #24324d; border-radius: 8px; padding: 10px 16px; min-width: 0; flex: 1 1 auto; }
.rg-tile-value { white-space: nowrap; }
.rg-tile-label { font-size: 15px; color: #9fb0c8; }
.rg-tile-value { font-size: 34px; font-weight: 700; font-variant-numeric: tabular-nums; }
.rg-tile-value span { font-size: 20px; margin-right: 8px; }
.rg-tile.rg-bad .rg-tile-value { color: #ff6b6b; }
.rg-alarm { background: #131d31; border-left: 6px solid #adb5bd; border-radius: 4px; padding: 8px 10px; margin: 0 0 8px; }
.rg-alarm-top { font-size: 18px; }
.rg-sev { color: #0b1220; border-radius: 3px; padding: 1px 6px; font-weight: 700; font-size: 14px; }
.rg-time { float: right; color: #9fb0c8; font-size: 14px; }
.rg-msg { font-size: 16px; margin: 4px 0; }
.rg-case { font-size: 15px; color: #9fb0c8; }
.rg-case-no { color: #ffd43b; }
.rg-empty { font-size: 18px; color: #69db7c; padding: 12px; }
.rg-ok { color: #69db7c; font-weight: 700; }
.rg-bad { color: #ff6b6b; font-weight: 700; }
.rg-stale { background: #ff922b; color: #0b1220; border-radius: 3px; padding: 0 6px; font-size: 13px; font-weight: 700; }
.rg-tile-stale { border-color: #ff922b; }
.rg-tile-value small { font-size: 13px; color: #9fb0c8; font-weight: 400; }
.rg-layers { display: flex; gap: 24px; padding: 2px 12px; font-size: 15px; color: #9fb0c8; }
.rg-filters { font-size: 14px; }
.rg-hint { color: #fcc419; font-size: 14px; }
.rg-group { color: #ffd8a8; font-size: 17px; font-weight: 700; margin-top: 2px; }
.rg-count { font-size: 15px; color: #9fb0c8; white-space: nowrap; }
.rg-detail { font-size: 14px; }
.rg-detail-empty { color: #9fb0c8; font-size: 15px; padding: 24px 4px; }
.rg-detail-head { font-size: 17px; line-height: 1.5; }
.rg-detail-sub { color: #9fb0c8; margin: 4px 0 10px; }
.rg-facts { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 14px; }
.rg-fact { display: flex; justify-content: space-between; gap: 8px; border-bottom: 1px solid #1c2840; padding: 3px 0; }
.rg-fact span { color: #9fb0c8; white-space: nowrap; }
.rg-fact b { text-align: right; overflow-wrap: anywhere; }
.rg-fact.rg-wide { grid-column: 1 / -1; }
.rg-detail-case { display: grid; grid-template-columns: 1fr; gap: 4px 14px; margin: 10px 0; padding: 8px 10px; background: #131d31; border: 1px solid #24324d; border-radius: 6px; }
.rg-detail-case .rg-case-no b { color: #ffd43b; font-size: 16px; }
.rg-members, .rg-timeline { width: 100%; border-collapse: collapse; font-size: 13px; }
.rg-members td, .rg-timeline td { padding: 3px 6px; border-bottom: 1px solid #1c2840; vertical-align: top; }
.rg-timeline td:first-child { color: #9fb0c8; white-space: nowrap; width: 1%; }
.rg-members tr.rg-current td { background: #24324d; }
"""


#: Inside a pn.Tabs shadow root (page CSS cannot reach there): a legible active tab.
TABS_CSS = """
.bk-header { border-bottom: 1px solid #24324d !important; }
.bk-tab { color: #9fb0c8 !important; background: transparent !important; border: 1px solid transparent !important; font-size: 15px !important; padding: 6px 16px !important; }
.bk-tab.bk-active { color: #ffffff !important; background: #24324d !important; border-color: #3b5b8c !important; border-bottom: 3px solid #ffa94d !important; font-weight: 700 !important; }
"""

#: Inside a Tabulator's shadow root: dark rows with light text (the midnight theme's grey
#: rows leave coloured text unreadable on a wall), a clear selected row.
TABLE_CSS = """
.tabulator { background-color: #0b1220 !important; border: 1px solid #24324d !important; font-size: 14px; }
.tabulator .tabulator-tableholder { background-color: #0b1220 !important; }
.tabulator .tabulator-header, .tabulator .tabulator-header .tabulator-col { background-color: #16233b !important; color: #dbe4f0 !important; border-color: #24324d !important; }
.tabulator-row { background-color: #131d31 !important; color: #dbe4f0 !important; border-bottom: 1px solid #1c2840 !important; }
.tabulator-row.tabulator-row-even { background-color: #0f1828 !important; }
.tabulator-row .tabulator-cell { border-right: 1px solid #1c2840 !important; }
.tabulator-row.tabulator-selectable:hover { background-color: #1e2d48 !important; }
.tabulator-row.tabulator-selected { background-color: #2b4470 !important; }
"""

#: Inside a button group's shadow root: the chosen option filled and bold, the other dim.
TOGGLE_CSS = """
.bk-btn { background: #131d31 !important; color: #9fb0c8 !important; border: 1px solid #3b5b8c !important; }
.bk-btn.bk-active { background: #ffa94d !important; color: #0b1220 !important; font-weight: 700 !important; border-color: #ffa94d !important; }
"""


def html(obj: str = "", **kwargs: Any) -> pn.pane.HTML:
    """An HTML pane carrying the control-room stylesheet."""
    return pn.pane.HTML(obj, stylesheets=[PANE_CSS], **kwargs)
