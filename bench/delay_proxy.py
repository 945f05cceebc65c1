#!/usr/bin/env python3
"""A TCP proxy on loopback that adds network latency to a Kafka broker (stdlib only).

The kernel on our machines has no netem, so latency comes from userspace: every chunk of bytes
read from one side is held for half the round-trip time, then written to the other side, in each
direction. The delay is latency, not bandwidth: a chunk is stamped with its due time when it is
read and the writer sleeps only until that time, so chunks in flight overlap and nothing is paid
per byte. Order is kept (one FIFO per direction and connection). A new connection also waits one
RTT before its first bytes move, as the TCP handshake would make it (--no-handshake-delay: not).

Kafka clients learn broker addresses from Metadata and then connect to what the broker
advertises. noida-db advertises its own listen port, so a plain proxy would be bypassed after
the first answer. With --rewrite (the default) the proxy decodes the frames that carry broker
addresses (Metadata, DescribeCluster, FindCoordinator: it remembers each request's api key and
version by correlation id) and replaces the upstream's host and port with its own listen
address. Every other frame is forwarded as it arrives, without waiting for the whole frame.

    python3 bench/delay_proxy.py --listen 127.0.0.1:19093 --target 127.0.0.1:19092 --rtt-ms 20
    python3 bench/delay_proxy.py --probe 127.0.0.1:19093 --count 10   # round trips (ms)

Prints "delay_proxy: listening on HOST:PORT ..." to stderr once it accepts connections; on
SIGTERM or SIGINT it stops and prints how many connections, frames and rewrites it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import statistics
import struct
import sys
import time

METADATA, FIND_COORDINATOR, DESCRIBE_CLUSTER = 3, 10, 60
# First flexible (compact encoding, tagged fields) version of each rewritten api.
FLEXIBLE_FROM = {METADATA: 9, FIND_COORDINATOR: 3, DESCRIBE_CLUSTER: 0}
MAX_FRAME = 512 * 1024 * 1024


class Stats:
    connections = 0
    frames_rewritten = 0
    brokers_rewritten = 0
    unknown_brokers = 0
    requests: dict = {}  # api key -> requests seen (only with rewrite on)


API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
             9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 15: "DescribeGroups",
             16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions", 32: "DescribeConfigs",
             35: "DescribeLogDirs", 36: "SaslAuthenticate", 60: "DescribeCluster"}


# --- Kafka response decoding (only as far as the broker addresses) -----------------------------


class Reader:
    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated frame")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise ValueError("varint too long")

    def string(self, compact: bool) -> str | None:
        n = self.uvarint() - 1 if compact else self.i16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def array_len(self, compact: bool) -> int:
        return self.uvarint() - 1 if compact else self.i32()

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_string(s: str, compact: bool) -> bytes:
    b = s.encode()
    return (uvarint(len(b) + 1) if compact else struct.pack(">h", len(b))) + b


class Rewriter:
    """Replaces (upstream host, port) by (proxy host, port) in one response frame."""

    def __init__(self, upstream: tuple[str, int], advertised: tuple[str, int]) -> None:
        self.upstream, self.advertised = upstream, advertised

    def _address(self, r: Reader, compact: bool, edits: list) -> None:
        start = r.pos
        host = r.string(compact)
        port = r.i32()
        if (host, port) == self.upstream or (port == self.upstream[1] and host in ("localhost", "127.0.0.1")):
            h, p = self.advertised
            edits.append((start, r.pos, enc_string(h, compact) + struct.pack(">i", p)))
            Stats.brokers_rewritten += 1
        else:
            Stats.unknown_brokers += 1

    def rewrite(self, frame: bytes, api: int, version: int) -> bytes:
        """frame: size + correlation id + rest. Returns the frame with addresses replaced."""
        flexible = version >= FLEXIBLE_FROM[api]
        r = Reader(frame, 8)
        if flexible:
            r.tags()  # response header v1
        edits: list[tuple[int, int, bytes]] = []
        if api == METADATA:
            if version >= 3:
                r.i32()  # throttle_time_ms
            for _ in range(max(0, r.array_len(flexible))):
                r.i32()  # node_id
                self._address(r, flexible, edits)
                if version >= 1:
                    r.string(flexible)  # rack
                if flexible:
                    r.tags()
        elif api == DESCRIBE_CLUSTER:
            r.i32()  # throttle_time_ms
            r.i16()  # error_code
            r.string(True)  # error_message
            if version >= 1:
                r.i8()  # endpoint_type
            r.string(True)  # cluster_id
            r.i32()  # controller_id
            for _ in range(max(0, r.array_len(True))):
                r.i32()  # broker_id
                self._address(r, True, edits)
                r.string(True)  # rack
                if version >= 2:
                    r.i8()  # is_fenced
                r.tags()
        elif api == FIND_COORDINATOR:
            if version >= 1:
                r.i32()  # throttle_time_ms
            if version <= 3:
                r.i16()  # error_code
                if version >= 1:
                    r.string(flexible)  # error_message
                r.i32()  # node_id
                self._address(r, flexible, edits)
            else:
                for _ in range(max(0, r.array_len(True))):
                    r.string(True)  # key
                    r.i32()  # node_id
                    self._address(r, True, edits)
                    r.i16()  # error_code
                    r.string(True)  # error_message
                    r.tags()
        if not edits:
            return frame
        out, last = bytearray(), 0
        for start, end, repl in edits:
            out += frame[last:start] + repl
            last = end
        out += frame[last:]
        struct.pack_into(">i", out, 0, len(out) - 4)
        Stats.frames_rewritten += 1
        return bytes(out)


# --- the proxy ------------------------------------------------------------------------------------


class Pipe:
    """One direction of one connection: stamp chunks on arrival, deliver them half an RTT later."""

    def __init__(self, writer: asyncio.StreamWriter, delay: float) -> None:
        self.writer, self.delay = writer, delay
        self.queue: asyncio.Queue = asyncio.Queue()

    def send(self, data: bytes, stamp: float) -> None:
        if data:
            self.queue.put_nowait((stamp + self.delay, data))

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    break
                due, data = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.writer.write(data)
                # Let the buffer drain only when it is large: waiting on every chunk would make
                # the writer pay the peer's read pace serially.
                if self.writer.transport.get_write_buffer_size() > 4 * 1024 * 1024:
                    await self.writer.drain()
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass


async def pump_requests(reader, pipe: Pipe, inflight: dict, rewrite: bool) -> None:
    """Client to broker: forward chunks as they come; note (api, version) of every request."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    skip = 0  # bytes of the current frame still to pass without parsing
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            stamp = loop.time()
            pipe.send(data, stamp)
            if not rewrite:
                continue
            buf += data
            while True:
                if skip:
                    n = min(skip, len(buf))
                    del buf[:n]
                    skip -= n
                    if skip:
                        break
                if len(buf) < 12:
                    break
                size, api, version, corr = struct.unpack_from(">ihhi", buf, 0)
                Stats.requests[api] = Stats.requests.get(api, 0) + 1
                if api in FLEXIBLE_FROM:
                    inflight[corr] = (api, version)
                skip = size + 4
    except (ConnectionError, OSError):
        pass
    finally:
        pipe.close()


async def pump_responses(reader, pipe: Pipe, inflight: dict, rewriter: Rewriter | None) -> None:
    """Broker to client: frames that carry broker addresses are held whole and rewritten; every
    other byte is forwarded as it arrives."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    passthrough = 0  # bytes of the current (not rewritten) frame still to forward as they come
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            stamp = loop.time()
            if rewriter is None:
                pipe.send(data, stamp)
                continue
            buf += data
            while buf:
                if passthrough:
                    n = min(passthrough, len(buf))
                    pipe.send(bytes(buf[:n]), stamp)
                    del buf[:n]
                    passthrough -= n
                    continue
                if len(buf) < 8:
                    break
                size, corr = struct.unpack_from(">ii", buf, 0)
                req = inflight.pop(corr, None)
                if req is None or not 0 <= size <= MAX_FRAME:
                    passthrough = size + 4 if size >= 0 else len(buf)
                    continue
                if len(buf) < size + 4:
                    inflight[corr] = req  # wait for the whole frame
                    break
                frame = bytes(buf[: size + 4])
                del buf[: size + 4]
                try:
                    frame = rewriter.rewrite(frame, *req)
                except (ValueError, struct.error, KeyError) as e:
                    print(f"delay_proxy: cannot decode api {req[0]} v{req[1]} answer ({e}); "
                          "forwarded unchanged", file=sys.stderr)
                pipe.send(frame, stamp)
    except (ConnectionError, OSError):
        pass
    finally:
        pipe.close()


async def serve(a) -> None:
    lhost, lport = parse_addr(a.listen)
    thost, tport = parse_addr(a.target)
    half = a.rtt_ms / 2000.0

    async def handle(creader, cwriter) -> None:
        Stats.connections += 1
        if a.handshake:
            # The kernel accepted the client at once; a real link costs one round trip (SYN,
            # SYN-ACK) before the client's first byte can even leave. Its bytes wait in the
            # socket meanwhile and are then delayed like all others.
            await asyncio.sleep(2 * half)
        try:
            sreader, swriter = await asyncio.open_connection(thost, tport)
        except OSError as e:
            print(f"delay_proxy: cannot reach {thost}:{tport}: {e}", file=sys.stderr)
            cwriter.close()
            return
        for w in (cwriter, swriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        to_server, to_client = Pipe(swriter, half), Pipe(cwriter, half)
        inflight: dict = {}
        rewriter = Rewriter((thost, tport), (adv_host, adv_port)) if a.rewrite else None
        await asyncio.gather(
            pump_requests(creader, to_server, inflight, a.rewrite),
            pump_responses(sreader, to_client, inflight, rewriter),
            to_server.run(),
            to_client.run(),
        )

    server = await asyncio.start_server(handle, lhost, lport, backlog=256)
    sock = server.sockets[0].getsockname()
    adv_host, adv_port = a.advertise_host or lhost, sock[1]
    print(f"delay_proxy: listening on {sock[0]}:{sock[1]} -> {thost}:{tport}, rtt {a.rtt_ms} ms, "
          f"rewrite {'on' if a.rewrite else 'off'}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()
    print(f"delay_proxy: {Stats.connections} connections, {Stats.frames_rewritten} frames rewritten "
          f"({Stats.brokers_rewritten} addresses; {Stats.unknown_brokers} left alone)", file=sys.stderr)
    if Stats.requests:
        print("delay_proxy: requests: " + ", ".join(
            f"{API_NAMES.get(k, k)} {v}" for k, v in sorted(Stats.requests.items())), file=sys.stderr)


# --- probe: Metadata round trips ------------------------------------------------------------------


def probe(addr: str, count: int) -> int:
    """Time COUNT ApiVersions v0 round trips (a tiny answer, so the time is the path, not the
    broker's work), one after the other on one connection, then send one Metadata v1 (brokers
    only) to show the advertised addresses. Prints each round trip in ms and the median."""
    host, port = parse_addr(addr)
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = b"delay-probe"

    def call(api: int, version: int, corr: int, body: bytes) -> bytes:
        req = struct.pack(">hhih", api, version, corr, len(client)) + client + body
        s.sendall(struct.pack(">i", len(req)) + req)
        head = recv_exact(s, 4)
        return head + recv_exact(s, struct.unpack(">i", head)[0])

    times = []
    for corr in range(1, count + 1):
        t0 = time.monotonic()
        call(18, 0, corr, b"")
        times.append((time.monotonic() - t0) * 1000)
    r = Reader(call(METADATA, 1, count + 1, struct.pack(">i", 0)), 8)
    brokers = []
    for _ in range(r.i32()):
        node = r.i32()
        brokers.append(f"{node}@{r.string(False)}:{r.i32()}")
        r.string(False)
    s.close()
    print(" ".join(f"{t:.1f}" for t in times))
    print(f"median {statistics.median(times):.1f} ms over {count} ApiVersions round trips; "
          f"brokers advertised (Metadata): {', '.join(brokers)}")
    return 0


def recv_exact(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return bytes(out)


def parse_addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> int:
    ap = argparse.ArgumentParser(description="loopback TCP proxy adding round-trip latency (Kafka-aware)")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (port 0: any)")
    ap.add_argument("--target", help="HOST:PORT of the broker")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="added round-trip time in ms (default 20)")
    ap.add_argument("--no-rewrite", dest="rewrite", action="store_false",
                    help="plain byte proxy: do not rewrite broker addresses in answers")
    ap.add_argument("--no-handshake-delay", dest="handshake", action="store_false",
                    help="do not charge new connections one RTT for the TCP handshake")
    ap.add_argument("--advertise-host", help="host to put in rewritten addresses (default: the listen host)")
    ap.add_argument("--probe", metavar="HOST:PORT", help="time ApiVersions round trips to HOST:PORT, show the advertised brokers, exit")
    ap.add_argument("--count", type=int, default=10, help="round trips for --probe (default 10)")
    a = ap.parse_args()
    if a.probe:
        return probe(a.probe, a.count)
    if not a.target:
        ap.error("--target is required (or --probe)")
    if a.rtt_ms < 0:
        ap.error("--rtt-ms must be >= 0")
    asyncio.run(serve(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
