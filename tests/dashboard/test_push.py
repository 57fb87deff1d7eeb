"""The pusher wakes sessions when the live store changes (instead of a fixed tick), refreshes
the shared caches first, folds a burst into one round, and leaves no change unpushed."""

from __future__ import annotations

import threading

from contracts.config import BrokerConfig
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.push import Pusher
from dashboard.views._live import LiveView
from tests.dashboard._helpers import NOW, alarm, batch, config


def _store(tmp_path) -> LiveStore:
    return LiveStore(devices_from_config(config(BrokerConfig(), str(tmp_path))))


def test_a_change_refreshes_the_caches_then_wakes_the_sessions(tmp_path):
    store = _store(tmp_path)
    order: list[str] = []
    woken = threading.Event()

    def wake() -> int:
        order.append("wake")
        woken.set()
        return 1

    pusher = Pusher(store, wake, prepare=[lambda: order.append("prepare")]).start()
    try:
        store.apply_batch(batch())
        assert woken.wait(30), "no session was woken after a change"
        assert order[:2] == ["prepare", "wake"]
    finally:
        pusher.stop()
    assert pusher.counters["wakes"] >= 1 and pusher.counters["errors"] == 0


def test_a_burst_during_a_round_is_one_more_round_and_nothing_is_left_behind(tmp_path):
    store = _store(tmp_path)
    in_round, release = threading.Event(), threading.Event()
    seen: list[int] = []  # the store version each round saw
    caught_up = threading.Event()
    final = {"version": -1}

    def prepare() -> None:
        seen.append(store.version)  # what this round will push
        if len(seen) == 1:
            in_round.set()
            assert release.wait(30)
        elif seen[-1] == final["version"]:
            caught_up.set()

    pusher = Pusher(store, lambda: 0, prepare=[prepare], interval_s=0.01).start()
    try:
        store.apply_batch(batch(seq=1))
        assert in_round.wait(30)
        for i in range(2, 50):  # many changes while the first round is busy
            store.apply_batch(batch(seq=i, ts=NOW + i))
        final["version"] = store.version
        release.set()
        assert caught_up.wait(30), f"the last change was never pushed: rounds saw {seen}"
    finally:
        pusher.stop()
    assert len(seen) == 2  # the burst went out together


def test_a_failing_cache_refresh_is_counted_and_sessions_are_still_woken(tmp_path):
    store = _store(tmp_path)
    woken = threading.Event()

    def broken() -> None:
        raise RuntimeError("boom")

    pusher = Pusher(store, lambda: woken.set() or 1, prepare=[broken]).start()
    try:
        store.apply_batch(batch())
        assert woken.wait(30)
    finally:
        pusher.stop()
    assert pusher.counters["errors"] >= 1


class _Doc:
    """Stands in for a Bokeh document: records next-tick callbacks."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def add_next_tick_callback(self, cb) -> None:
        self.callbacks.append(cb)


class _Counting(LiveView):
    def __init__(self, store: LiveStore) -> None:
        super().__init__(store)
        self.applied: list = []

    def full(self) -> None:
        self.applied.append("full")

    def apply(self, changes) -> None:
        self.applied.append(set(changes.devices))


def test_a_view_is_woken_once_until_its_update_ran(tmp_path):
    store = _store(tmp_path)
    view = _Counting(store)
    assert not view.wake()  # not in a session: nothing to schedule on
    view._doc = doc = _Doc()
    store.apply_batch(batch())
    assert view.wake() and not view.wake()  # one pending update is enough
    assert len(doc.callbacks) == 1
    doc.callbacks.pop()()
    assert view.applied == [{"LC-0001", "LC-0002", "DM-0001", "TRK-0001"}]
    assert view.wake()  # the next change may wake it again
    view.stop()
    assert not view.wake()


def test_an_alarm_is_pushed_at_once_while_telemetry_waits_for_its_pace(tmp_path):
    store = _store(tmp_path)
    rounds: list[int] = []
    first, second = threading.Event(), threading.Event()

    def wake() -> int:
        rounds.append(store.version)
        (second if first.is_set() else first).set()
        return 1

    # An hour between telemetry rounds: only the urgent path can bring the second round.
    pusher = Pusher(store, wake, interval_s=3600).start()
    try:
        store.apply_batch(batch())
        assert first.wait(30)
        store.apply_alarm("A-1", alarm().encode())
        assert second.wait(30), "the alarm waited for the telemetry pace"
    finally:
        pusher.stop()
    assert rounds[-1] == store.version
