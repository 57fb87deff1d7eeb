"""The dashboard server: composes the pages (wall "/", "/lighting", "/alarms", "/fleet") around one
live store and one MQTT feed per process, with logins and roles (see dashboard.auth).
``rongguan dashboard -c CONFIG.yaml`` runs it (with the deployment's clock installed).
"""

from __future__ import annotations

import html
import logging
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn

from contracts.config import DeploymentConfig
from dashboard.actions import Actions
from dashboard.auth import Identity, identity_of, server_auth_kwargs
from dashboard.feed import LiveFeed
from dashboard.history import History
from dashboard.i18n import session_language, tr
from dashboard.kpi import KpiCache
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.push import Pusher
from dashboard.views._live import set_display_tz, wake_live_views
from dashboard.views.alarms import AlarmsView
from dashboard.views.fleet import FleetView, default_day_of
from dashboard.views.lighting import LightingView
from dashboard.views.markers import MarkerCache
from dashboard.views.style import PAGE_CSS
from dashboard.views.style import html as html_pane
from dashboard.views.wall import WallView

__all__ = ["Dashboard", "serve"]

log = logging.getLogger("rongguan.dashboard")

_STATIC = Path(__file__).with_name("static")
#: kiosk.js: reload after a lost connection, ?rotate=N view rotation (served by us, offline)
pn.extension("tabulator", raw_css=[PAGE_CSS], theme="dark", notifications=False,
             js_files={"rg_kiosk": "rg-static/kiosk.js"})  # fmt: skip
#: how soon a closed screen's session (and its periodic callback) is released
SESSION_CHECK_MS = 2_000


class Dashboard:
    """The process-wide parts (store, feed, actions) and the page factories for sessions."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        store: LiveStore,
        actions: Actions,
        auth: bool,
        *,
        redraw_all: bool = False,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.actions = actions
        self.auth = auth
        self.redraw_all = redraw_all  # benchmark baseline: wall redraws whole layers
        self.kpis = KpiCache(store)
        self.markers = MarkerCache(store)
        self.history = History(cfg)
        set_display_tz(cfg.tz)

    def pages(self) -> dict[str, Callable[[], Any]]:
        """Route → page factory, as pn.serve takes them."""
        return {name if name != "wall" else "/": (lambda n=name: self.page(n))
                for name in ("wall", "lighting", "alarms", "fleet")}  # fmt: skip

    def _nav(self, who: Identity, lang: str) -> pn.pane.HTML:
        links = " ".join(
            f'<a href="{href}?lang={lang}">{tr(key, lang)}</a>'
            for href, key in (
                ("./", "wall"),
                ("lighting", "lighting"),
                ("alarms", "alarms"),
                ("fleet", "fleet"),
            )  # fmt: skip
        )
        other = "en" if lang == "zh" else "zh"
        account = ""
        if self.auth:
            account = (f'<a href="login">{tr("login", lang)}</a>' if who.is_guest
                       else f'<a href="logout">{tr("logout", lang)}</a>')  # fmt: skip
        return html_pane(
            f'<div class="rg-nav"><b>{html.escape(self.cfg.dashboard.title)}</b> {links}'
            f'<a href="?lang={other}">{"English" if other == "en" else "中文"}</a>'
            f'<span class="rg-user">{tr("user", lang)}: {html.escape(who.user)} ({who.role}) {account}</span></div>',
            sizing_mode="stretch_width",
        )

    def page(self, name: str) -> pn.viewable.Viewable:
        """Build one session's page; the identity comes from the server, never from the page."""
        lang = session_language(self.cfg.dashboard.language)
        who = identity_of(self.cfg, pn.state.user)
        if who is None:
            return html_pane(f'<div class="rg-h2"><a href="login">{tr("login", lang)}</a></div>')
        if name == "wall":
            view: Any = WallView(
                self.store, self.kpis, self.cfg.dashboard.basemap, lang,
                self.cfg.dashboard.title, redraw_all=self.redraw_all, markers=self.markers,
                geofences=self.cfg.geofences,
            )  # fmt: skip
        elif name == "lighting":
            view = LightingView(self.store, self.actions, who, lang)
        elif name == "fleet":
            view = FleetView(self.store, who, lang, self.cfg.dashboard.basemap, self.history,
                             default_day_of(self.cfg), self.cfg.geofences)  # fmt: skip
        else:
            view = AlarmsView(self.store, self.actions, who, lang, self.history)
        view.start()
        nav = self._nav(who, lang)
        if name in ("wall", "alarms"):  # consoles that fill the screen, no page scrolling
            return pn.Column(nav, view.layout, sizing_mode="stretch_both", height_policy="max",
                             styles={"height": "100vh"})  # fmt: skip
        return pn.Column(nav, view.layout, sizing_mode="stretch_width")

    def pusher(self) -> Pusher:
        """The process's pusher: marker cache refreshed, then every live session woken."""
        return Pusher(self.store, wake_live_views, prepare=[self.markers.refresh],
                      interval_s=self.cfg.dashboard.push_interval_s)  # fmt: skip


def _origins(host: str, port: int) -> list[str]:
    """Websocket origins the server accepts: the names this machine is reached by."""
    names = {"localhost", "127.0.0.1", host}
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            names |= set(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    return sorted(f"{n}:{port}" for n in names if n and n not in ("0.0.0.0", "::"))


def seed_from_history(cfg: DeploymentConfig, store: LiveStore) -> int:
    """Fill the live store with the last stored value of every (device, field).

    Devices that report by exception (OPC-UA subscriptions, HJ 212 on change) may not send
    an unchanged value again for hours: a restarted dashboard starts from the store.
    """
    from contracts.telemetry import TelemetryBatch
    from ingest.store import open_store

    try:
        hist = open_store(cfg, read_only=True)
        try:
            latest = hist.latest()
        finally:
            hist.close()
    except Exception as exc:  # noqa: BLE001 - no history is not fatal for a live screen
        log.warning("no history to start from (%s); live data only", exc)
        return 0
    batch = TelemetryBatch(agent="history", seq=0)
    cols = latest.to_dict(as_series=False)
    batch.device_id, batch.kind, batch.ts = cols["device_id"], cols["kind"], cols["ts"]
    batch.field_name, batch.value = cols["field"], cols["value"]
    rows = store.apply_batch(batch) if len(batch) else 0
    log.info("started from %d stored values", len(batch))
    return rows


def serve(
    cfg: DeploymentConfig,
    *,
    stop: threading.Event | None = None,
    redraw_all: bool = False,
    store: LiveStore | None = None,
) -> None:
    """Run the dashboard until SIGINT/SIGTERM or until ``stop`` is set (blocking).

    ``store`` lets a benchmark feed the process's live store directly; ``redraw_all`` makes
    wall screens redraw whole marker layers each second (the benchmark's baseline).
    """
    if store is None:
        store = LiveStore(devices_from_config(cfg))
        seed_from_history(cfg, store)
    feed = LiveFeed(cfg.broker, store)
    feed.start()
    auth = server_auth_kwargs(cfg)
    app = Dashboard(cfg, store, Actions(store, feed.publish), bool(auth), redraw_all=redraw_all)
    pusher = app.pusher().start()
    server = pn.serve(
        app.pages(), port=cfg.dashboard.port, address=cfg.dashboard.host, show=False,
        threaded=False, start=False, title=cfg.dashboard.title,
        websocket_origin=_origins(cfg.dashboard.host, cfg.dashboard.port),
        static_dirs={"rg-static": str(_STATIC)},
        check_unused_sessions_milliseconds=SESSION_CHECK_MS,
        unused_session_lifetime_milliseconds=SESSION_CHECK_MS,
        **auth,
    )  # fmt: skip
    loop = server.io_loop

    def _stop(*_args: object) -> None:
        loop.asyncio_loop.call_soon_threadsafe(loop.stop)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    if stop is not None:
        threading.Thread(
            target=lambda: (stop.wait(), _stop()), name="dashboard-stop", daemon=True
        ).start()
    server.start()
    log.info("dashboard on http://%s:%d/", cfg.dashboard.host, server.port)
    try:
        loop.start()
    finally:
        server.stop()
        pusher.stop()
        feed.stop()
        app.history.close()
        log.info("dashboard stopped; feed counters %s", store.stats())
