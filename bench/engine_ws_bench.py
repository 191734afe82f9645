"""CPU per message of the engine-leg websocket client: websockets' asyncio client vs callbridge's
lean client on websockets' sans-I/O protocol. The sink server runs in another process, so the
figure is the client's own cost. ``python -m bench.engine_ws_bench``."""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import time

import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from bridge.engines.wsclient import lean_connect

AUDIO = base64.b64encode(b"\xff" * 160).decode()
MESSAGE = '{"type":"input_audio_buffer.append","audio":"' + AUDIO + '"}'


def _sink(port: multiprocessing.Queue[int]) -> None:
    async def handler(ws: object) -> None:
        async for _ in ws:  # type: ignore[attr-defined]
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port.put(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    uvloop.run(main())


async def _stock(url: str, n: int) -> float:
    async with connect(url, compression=None) as ws:
        start = time.process_time()
        for i in range(n):
            await ws.send(MESSAGE)
            if i % 50 == 49:
                await asyncio.sleep(0)  # a live loop interleaves other calls' work
        return time.process_time() - start


async def _lean(url: str, n: int) -> float:
    ws = await lean_connect(url)
    start = time.process_time()
    for i in range(n):
        await ws.send(MESSAGE)
        if i % 50 == 49:
            await asyncio.sleep(0)
    elapsed = time.process_time() - start
    await ws.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_sink, args=(ports,), daemon=True)
    sink.start()
    url = f"ws://127.0.0.1:{ports.get(timeout=10)}/"
    try:
        for name, run in (("websockets asyncio client", _stock), ("lean sans-I/O client", _lean)):
            best = min(uvloop.run(run(url, args.messages)) for _ in range(args.rounds))
            print(f"{name:28s} {best / args.messages * 1e6:6.2f} µs CPU per message")
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
