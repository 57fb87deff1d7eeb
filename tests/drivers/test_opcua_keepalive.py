"""A server that goes silent without closing TCP (a stalled link, a hung device) is noticed
by the driver's session watch, and the subscription comes back by itself when it answers;
a subscription the server drops while the session lives comes back too."""

from __future__ import annotations

import asyncio
import time

from drivers.opcua import OpcUaDriver
from tests.drivers._opcua import CabinetServer, SilentProxy, supervised, until


def test_silent_server_is_detected_and_subscription_recreated_when_it_answers() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        proxy = await SilentProxy(srv.port).start()
        device = srv.device(0, publishing_interval_ms=100).model_copy(
            update={"endpoint": proxy.endpoint}
        )
        driver = OpcUaDriver(device)
        try:
            async with supervised(device, driver) as (sup, got):
                try:
                    await until(lambda: len(got) > 20, 10, "first data")
                    assert driver.subscribed and driver.stats()["reads"] == 0
                    proxy.pause()  # TCP stays up; nothing comes back
                    await until(lambda: sup.state != "online", 30, "the silence noticed")
                    # Pushed data only: the loss was found by the session watch (watchdog
                    # probe or publish/keep-alive age), not by a failing Read.
                    assert driver.stats()["sessions_lost"] >= 1, (sup.reason, driver.stats())
                    assert "session lost" in sup.reason, sup.reason
                    t_resume = time.monotonic()
                    proxy.resume()
                    await until(
                        lambda: any(t > t_resume and r.field == "voltage_l1" for t, r in got),
                        30,
                        "data after the server answers again",
                    )
                    await until(lambda: sup.state == "online", 10, "online again")
                    stats = driver.stats()
                    assert stats["sessions"] >= 2 and stats["subscriptions"] >= 2, stats
                    assert stats["reads"] == 0  # still pushed, not fallen back to polling
                    assert driver.subscribed
                    # Data keeps flowing on the recreated subscription.
                    n = len(got)
                    await until(
                        lambda: len(got) > n + 10, 10, "steady data on the new subscription"
                    )
                finally:
                    proxy.resume()  # first: a paused link would hold up the supervisor's stop
        finally:
            await proxy.stop()
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_subscription_dropped_by_the_server_comes_back_by_itself() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        device = srv.device(0, publishing_interval_ms=100)
        driver = OpcUaDriver(device)
        try:
            async with supervised(device, driver) as (_sup, got):
                await until(lambda: len(got) > 20, 10, "first data")
                assert srv.server is not None
                subs = srv.server.server.iserver.subscription_service
                old = set(subs.subscriptions)
                # The session lives on; its subscription is gone (a server-side cleanup, a
                # lifetime expiry): the publish stream stops without any error.
                await subs.delete_subscriptions(list(old))
                await until(lambda: set(subs.subscriptions) - old, 30, "a new subscription")
                t_new = time.monotonic()
                # More values than the few still queued from before the drop: fresh data.
                await until(
                    lambda: sum(t > t_new and r.field == "voltage_l1" for t, r in got) >= 5,
                    30,
                    "data on the new subscription",
                )
                assert driver.subscribed and driver.stats()["reads"] == 0
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 90))
