"""``python -m include.devtools.zoho_simulator``: run the local Zoho CRM simulator until interrupted."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from .app import Simulator, build_app
from .config import build_parser, parse_time_start, settings_from_args


async def serve(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        raise SystemExit(f"zoho simulator: {err}") from None
    clock = parse_time_start(args.clock, "--clock") if args.clock else None
    sim = Simulator(args, settings, parse_time_start(args.time_start), clock)
    runner = web.AppRunner(build_app(sim), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://{args.host}:{port}"
    sim.api_domain = args.api_domain or url
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"Zoho CRM simulator listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        sim.close()


def main() -> None:
    try:
        asyncio.run(serve(sys.argv[1:]))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
