"""Each service on its own: ``rongguan simulate|agent|ingest|rules|dashboard|broker``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from contracts import clock
from contracts.config import ConfigError, DeploymentConfig, load_config
from rongguan.runner import run_until_signalled

__all__ = ["run"]

log = logging.getLogger("rongguan")


def run(args: argparse.Namespace) -> int:
    """Run the service the command line names until SIGINT/SIGTERM."""
    if args.command == "broker":
        from rongguan.broker import serve_embedded

        run_until_signalled(lambda stop: serve_embedded(args.port, stop))
        return 0
    if args.command == "simulate":
        from rongguan.simulate import run as simulate

        run_until_signalled(lambda stop: simulate(args, stop))
        return 0
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # one clock for the deployment: every service stamps and judges data time by it
    clock.install(cfg.clock.build())
    if not clock.current().is_wall:
        log.info("deployment clock: speed %g, start %s", cfg.clock.speed, cfg.clock.start)
    if args.command == "agent":
        return _agent(cfg, args.agent, args.config)
    try:
        cfg.check_partition(getattr(args, "partition", None))
    except ValueError as exc:
        print(f"{args.config}: --{exc}", file=sys.stderr)
        return 2
    if args.command == "ingest":
        run_until_signalled(
            lambda stop: _ingest(cfg, args.partition, not args.no_rules, True, stop)
        )
        return 0
    if args.command == "rules":
        run_until_signalled(lambda stop: _ingest(cfg, args.partition, True, False, stop))
        return 0
    if args.command == "dashboard":
        from dashboard.app import serve
        from hardware.geo import DISTRICTS_FILE

        if cfg.dashboard.basemap is None:
            cfg.dashboard.basemap = str(DISTRICTS_FILE)
        serve(cfg)
        return 0
    raise AssertionError(args.command)


def _agent(cfg: DeploymentConfig, agent_id: str | None, config_path: str) -> int:
    from edge_agent import EdgeAgent

    if agent_id is None:
        if len(cfg.agents) != 1:
            print(f"--agent is required: the config has {len(cfg.agents)} agents", file=sys.stderr)
            return 2
        agent_id = cfg.agents[0].id
    try:
        cfg.agent(agent_id)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    # SIGHUP re-reads config_path and applies it without a restart
    agent = EdgeAgent(
        cfg, agent_id, metrics_port=cfg.agent(agent_id).metrics_port, config_path=config_path
    )
    run_until_signalled(agent.run)
    return 0


async def _ingest(
    cfg: DeploymentConfig,
    partition: int | None,
    with_rules: bool,
    write_store: bool,
    stop: asyncio.Event,
) -> None:
    from ingest.service import IngestService

    hooks = []
    tasks = []
    if with_rules and cfg.rules:
        from rules.service import RulesService

        rules = RulesService(cfg)
        hooks.append(rules.on_batch)
        tasks.append(asyncio.create_task(rules.run(stop), name="rules"))
    ingest = IngestService(cfg, hooks=hooks, write_store=write_store, partition=partition)

    tasks.append(asyncio.create_task(ingest.run(stop), name="ingest"))
    tasks.append(asyncio.create_task(_announce_ready(cfg, ingest, stop), name="ready"))
    await asyncio.gather(*tasks)


async def _announce_ready(cfg: DeploymentConfig, ingest, stop: asyncio.Event) -> None:
    """Write ``<var_dir>/ingest.ready`` once the telemetry subscription is in place, so a
    supervisor (``rongguan demo``) starts agents only when nothing they send can be missed."""
    while not stop.is_set():
        if await asyncio.to_thread(ingest.wait_subscribed, 1.0):
            marker = cfg.path("ingest.ready")
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("subscribed\n")
            log.info("ingest subscribed to telemetry")
            return
