#!/usr/bin/env python3
"""A TCP proxy that resets some connections on purpose: usage reset_proxy.py LISTEN_PORT
TARGET_PORT RATE [SEED]. With probability RATE a connection is cut with a TCP reset either
before the request reaches the receiver or after the receiver answered (so the client never
hears the answer of a request that was processed)."""
import asyncio, random, socket, struct, sys

listen, target, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)


def reset(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def pipe(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass


async def handle(cr, cw):
    roll = rng.random()
    if roll < rate / 2:
        await cr.read(1024)
        reset(cw)
        return
    tr, tw = await asyncio.open_connection("127.0.0.1", target)
    if roll < rate:
        # Forward the request, let the receiver answer, then cut the client off.
        up = asyncio.create_task(pipe(cr, tw))
        first = await tr.read(65536)
        await asyncio.sleep(0.05)
        reset(cw)
        up.cancel()
        tw.close()
        return
    await asyncio.gather(pipe(cr, tw), pipe(tr, cw))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()

asyncio.run(main())
