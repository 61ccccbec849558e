"""Run mongoeco's MongoDB wire-protocol server until SIGTERM/SIGINT.

Started by scripts/stack with the Python 3.13 venv that holds mongoeco.
mongoeco's default engine is in-memory (MemoryEngine): data does not survive a
restart, which is what a test stack wants (`scripts/stack reset` still drops
databases for a live server).

usage: python mongoeco_server.py HOST PORT
"""

import asyncio
import signal
import sys

from mongoeco.wire.proxy import AsyncMongoEcoProxyServer


async def main(host: str, port: int) -> None:
    server = AsyncMongoEcoProxyServer(host=host, port=port)
    address = await server.start()
    # scripts/stack does not trust this line; it waits for a real `ping`.
    print(f"mongoeco wire server listening on {address.host}:{address.port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    print("mongoeco wire server stopping", flush=True)
    await server.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mongoeco_server.py HOST PORT")
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
