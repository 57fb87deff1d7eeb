"""Run one edge agent as a process: ``python -m edge_agent CONFIG AGENT_ID [--metrics-port N]``.

SIGTERM and SIGINT stop it cleanly (batches kept on disk); SIGKILL loses nothing that
was acknowledged, since every batch is on disk before it is published. SIGHUP re-reads
CONFIG and applies it without a restart (``edge_agent.reload``); a bad file is refused
with its errors logged and the running config kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from contracts import clock
from contracts.config import ConfigError, load_config
from edge_agent.agent import EdgeAgent

__all__ = ["main"]


async def _serve(agent: EdgeAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point; 0 after a clean stop, 2 for a bad config or unknown agent."""
    ap = argparse.ArgumentParser(prog="python -m edge_agent", description=__doc__)
    ap.add_argument("config", help="deployment YAML")
    ap.add_argument("agent_id", help="id of the agent in the config")
    ap.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0: free)")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        cfg = load_config(args.config)
        clock.install(cfg.clock.build())  # the deployment's clock stamps the agent's data
        agent = EdgeAgent(
            cfg, args.agent_id, metrics_port=args.metrics_port, config_path=args.config
        )
    except (ConfigError, KeyError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    asyncio.run(_serve(agent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
