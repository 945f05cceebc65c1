#!/usr/bin/env python3
"""Seed a Kafka-compatible broker with data for the krawl benchmark or the demo.

Benchmark data set (default):

    python3 scripts/seed.py --bootstrap 127.0.0.1:9092 \
        --topics 10000 --partitions 3 --groups 500 --messages 100

creates TOPICS topics named PREFIX-topic-NNNNN (in batches, through
AdminClient.create_topics; every 10th topic has a retention.ms override, every
25th is compacted, every 50th has max.message.bytes and segment.ms overrides),
produces MESSAGES messages into each partition of the first --message-topics
topics (200 by default, to keep seeding short), and creates GROUPS consumer
groups named PREFIX-group-NNNN, each with committed offsets on a few partitions
of one to three topics. Groups are created WITHOUT joining them and without a
consumer per group: the script speaks the Kafka protocol itself (stdlib socket
and struct, one connection per broker), asks FindCoordinator (v0) for every
group, then sends one OffsetCommit (v2: generation -1, empty member id, default
retention) per group to its coordinator, up to --window requests in flight per
connection, and checks every error code in the answers (a failure names the
group and partition). So the groups are Empty, have no members and have lag
where their topics have messages.

Sample data set for a demo (--sample): topics `orders` (3 partitions,
retention.ms=604800000), `payments` (1 partition), `customers` (3 partitions,
cleanup.policy=compact), a few dozen messages each, and the groups
`billing-service` (orders + payments) and `analytics` (orders) with committed
offsets behind the latest offsets (so they have lag).

Cost on noida-db 0.2.3 (2 cores shared with other work, 2026-12-07; seconds):

    topics x 3   groups   create topics   messages   groups   whole script   load
    1,000            50   0.02            0.28       0.03     0.3            1.4
    10,000          500   0.18            0.31       0.16     0.7            2.9
    10,000       10,000   0.1             0.4        1.2      1.8            -
    50,000        2,500   1.06            0.27       0.12     1.5            7.0
    100,000      10,000   3.39            0.22       0.41     4.2            3.8
    100,000      10,000   9.8             4.3        1.8      16.1           -

The rows with a load come from one scripts/bench.sh run (the machine's
1-minute load average after that size's runs); the two without ran by hand
while a release build used the cores. Topic creation (500 per CreateTopics
request, one request at a time) grows faster than linearly with the number of
topics already there; not profiled.
The messages go to 200 topics whatever the size. The groups cost 0.04-0.18 ms
each (the previous version, one confluent-kafka Consumer per group, managed
about 10 groups per second: 10,000 groups would have taken ~17 minutes).

Re-running against a broker that already has the topics is safe: existing
topics are reported and left as they are (nothing is produced into them again);
the committed offsets are simply committed again.

Prints what it did and how long each step took to stdout; `--json` adds one
machine-readable JSON line at the end. Exits 1 if any topic, message or offset
could not be written, 2 on bad usage or a missing dependency.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import threading
import time

try:
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "seed.py: the Python package confluent-kafka is not installed.\n"
        "         install it with:  python3 -m pip install confluent-kafka\n"
    )
    sys.exit(2)


def log(msg: str) -> None:
    print(f"seed: {msg}", flush=True)


def topic_overrides(i: int) -> dict[str, str]:
    """Config overrides for the i-th benchmark topic (deterministic)."""
    cfg: dict[str, str] = {}
    if i % 10 == 0:
        cfg["retention.ms"] = str((1 + i % 7) * 86_400_000)
    if i % 25 == 0:
        cfg["cleanup.policy"] = "compact"
    if i % 50 == 0:
        cfg["max.message.bytes"] = "2097152"
        cfg["segment.ms"] = "3600000"
    return cfg


class Seeder:
    def __init__(self, bootstrap: str, timeout: float):
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
        self.errors: list[str] = []

    def check_broker(self) -> None:
        try:
            md = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as e:
            sys.stderr.write(f"seed.py: cannot reach a broker at {self.bootstrap}: {e}\n")
            sys.exit(1)
        log(f"broker {self.bootstrap}: {len(md.brokers)} broker(s), {len(md.topics)} topics already there")

    # ---- topics ---------------------------------------------------------------------------------
    def create_topics(self, specs: list[NewTopic], batch: int) -> tuple[set[str], set[str]]:
        """Creates the topics, `batch` per CreateTopics request. Returns (created, existing)."""
        created: set[str] = set()
        existing: set[str] = set()
        for start in range(0, len(specs), batch):
            chunk = specs[start : start + batch]
            futures = self.admin.create_topics(
                chunk, operation_timeout=self.timeout, request_timeout=self.timeout * 2
            )
            for name, fut in futures.items():
                try:
                    fut.result(timeout=self.timeout * 3)
                    created.add(name)
                except KafkaException as e:
                    err = e.args[0]
                    if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                        existing.add(name)
                    else:
                        self.errors.append(f"create topic {name}: {err}")
                except Exception as e:  # timeout of the future itself
                    self.errors.append(f"create topic {name}: {e!r}")
        return created, existing

    # ---- messages -------------------------------------------------------------------------------
    def produce(self, messages: list[tuple[str, int, bytes | None, bytes]]) -> int:
        """Produces (topic, partition, key, value) messages; returns how many were acknowledged."""
        if not messages:
            return 0
        acked = 0
        failed: list[str] = []
        lock = threading.Lock()

        def on_delivery(err, msg):
            nonlocal acked
            with lock:
                if err is None:
                    acked += 1
                elif len(failed) < 5:
                    failed.append(f"{msg.topic()}[{msg.partition()}]: {err}")

        p = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 20,
                "batch.num.messages": 1000,
                "queue.buffering.max.messages": 200_000,
                "acks": "all",
                "enable.idempotence": False,
            }
        )
        for topic, partition, key, value in messages:
            while True:
                try:
                    p.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        remaining = p.flush(self.timeout * 4)
        if remaining:
            self.errors.append(f"produce: {remaining} message(s) not delivered within {self.timeout * 4:.0f}s")
        if failed:
            self.errors.append("produce failed: " + "; ".join(failed))
        return acked

    # ---- consumer groups ------------------------------------------------------------------------
    def commit_groups(self, groups: dict[str, list[tuple[str, int, int]]], window: int) -> None:
        """Commits offsets for every group without joining it, over the Kafka protocol directly.

        One connection to the bootstrap broker asks FindCoordinator (v0) for every group; then one
        connection per coordinator sends one OffsetCommit (v2: generation -1, empty member id,
        retention -1, what a consumer that never joins sends) per group. Up to `window` requests
        are in flight per connection, matched to their answers by correlation id. Every error code
        in every answer is checked; a failure names the group (and the partition).
        """
        if not groups:
            return
        host, _, port = self.bootstrap.rpartition(":")
        try:
            boot = KafkaWire(host or "127.0.0.1", int(port), self.timeout)
        except (OSError, ValueError) as e:
            self.errors.append(f"commit: cannot connect to {self.bootstrap}: {e}")
            return
        conns: dict[tuple[str, int], KafkaWire] = {}
        try:
            boot.require({API_FIND_COORDINATOR: 0, API_OFFSET_COMMIT: 2})
            names = list(groups)
            answers = boot.pipeline(API_FIND_COORDINATOR, 0, [enc_str(g) for g in names], window)
            by_coord: dict[tuple[str, int], list[str]] = {}
            for g, body in zip(names, answers):
                err, _node, chost, cport = dec_find_coordinator_v0(body)
                if err != 0:
                    self.errors.append(f"commit {g}: FindCoordinator error {kafka_error(err)}")
                    continue
                by_coord.setdefault((chost, cport), []).append(g)
            for (chost, cport), gs in by_coord.items():
                if (chost, cport) not in conns:
                    conns[(chost, cport)] = KafkaWire(chost, cport, self.timeout)
                    conns[(chost, cport)].require({API_OFFSET_COMMIT: 2})
                bodies = [enc_offset_commit_v2(g, groups[g]) for g in gs]
                answers = conns[(chost, cport)].pipeline(API_OFFSET_COMMIT, 2, bodies, window)
                for g, body in zip(gs, answers):
                    want = {(t, p) for t, p, _ in groups[g]}
                    got: set[tuple[str, int]] = set()
                    for t, p, err in dec_offset_commit_v2(body):
                        got.add((t, p))
                        if err != 0:
                            self.errors.append(f"commit {g}: {t}[{p}]: OffsetCommit error {kafka_error(err)}")
                    if got != want:
                        self.errors.append(f"commit {g}: the answer covers {sorted(got)}, committed {sorted(want)}")
        except (OSError, WireError) as e:
            self.errors.append(f"commit: {e}")
        finally:
            boot.close()
            for c in conns.values():
                c.close()


# ---- a minimal Kafka protocol client (stdlib only) for the offset commits --------------------
API_OFFSET_COMMIT, API_FIND_COORDINATOR, API_VERSIONS = 8, 10, 18
KAFKA_ERRORS = {
    3: "UNKNOWN_TOPIC_OR_PARTITION", 7: "REQUEST_TIMED_OUT", 14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 22: "ILLEGAL_GENERATION",
    24: "INVALID_GROUP_ID", 25: "UNKNOWN_MEMBER_ID", 28: "OFFSET_METADATA_TOO_LARGE",
    29: "TOPIC_AUTHORIZATION_FAILED", 30: "GROUP_AUTHORIZATION_FAILED", 35: "UNSUPPORTED_VERSION",
}


class WireError(Exception):
    pass


def kafka_error(code: int) -> str:
    return f"{code} ({KAFKA_ERRORS.get(code, 'see the Kafka protocol error codes')})"


def enc_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def enc_offset_commit_v2(group: str, offsets: list[tuple[str, int, int]]) -> bytes:
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for t, p, o in offsets:
        by_topic.setdefault(t, []).append((p, o))
    # group_id, generation_id -1, member_id "", retention_time_ms -1 (the broker's default)
    out = [enc_str(group), struct.pack(">i", -1), enc_str(""), struct.pack(">q", -1),
           struct.pack(">i", len(by_topic))]
    for t, parts in by_topic.items():
        out.append(enc_str(t))
        out.append(struct.pack(">i", len(parts)))
        for p, o in parts:
            out.append(struct.pack(">iqh", p, o, -1))  # partition, offset, metadata null
    return b"".join(out)


class Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        try:
            v = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error as e:
            raise WireError(f"truncated answer ({e})") from None
        self.pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string(self) -> str:
        n = self.take(">h")
        if n < 0:
            return ""
        if self.pos + n > len(self.buf):
            raise WireError("truncated answer (string)")
        s = self.buf[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def count(self) -> int:
        n = self.take(">i")
        if n < 0 or n > len(self.buf):
            raise WireError(f"bad array length {n}")
        return n


def dec_find_coordinator_v0(body: bytes) -> tuple[int, int, str, int]:
    r = Reader(body)
    err, node = r.take(">hi")
    host = r.string()
    return err, node, host, r.take(">i")


def dec_offset_commit_v2(body: bytes) -> list[tuple[str, int, int]]:
    r = Reader(body)
    out = []
    for _ in range(r.count()):
        t = r.string()
        for _ in range(r.count()):
            p, err = r.take(">ih")
            out.append((t, p, err))
    return out


class KafkaWire:
    """One TCP connection speaking non-flexible Kafka requests (header v1, answers header v0)."""

    def __init__(self, host: str, port: int, timeout: float):
        self.addr = f"{host}:{port}"
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1
        self.rbuf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def _frame(self, api: int, version: int, body: bytes) -> tuple[int, bytes]:
        cid = self.next_id
        self.next_id = (self.next_id + 1) & 0x7FFFFFFF
        msg = struct.pack(">hhi", api, version, cid) + enc_str("krawl-seed") + body
        return cid, struct.pack(">i", len(msg)) + msg

    def _read_one(self) -> tuple[int, bytes]:
        while True:
            if len(self.rbuf) >= 4:
                (n,) = struct.unpack_from(">i", self.rbuf)
                if n < 4 or n > 64 << 20:
                    raise WireError(f"{self.addr}: bad answer size {n}")
                if len(self.rbuf) >= 4 + n:
                    frame = bytes(self.rbuf[4 : 4 + n])
                    del self.rbuf[: 4 + n]
                    return struct.unpack_from(">i", frame)[0], frame[4:]
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise WireError(f"{self.addr}: the broker closed the connection")
            self.rbuf += chunk

    def pipeline(self, api: int, version: int, bodies: list[bytes], window: int) -> list[bytes]:
        """Sends the requests `window` at a time; returns the answer bodies in request order."""
        out: list[bytes] = []
        for start in range(0, len(bodies), window):
            frames = [self._frame(api, version, b) for b in bodies[start : start + window]]
            self.sock.sendall(b"".join(f for _, f in frames))
            pending = {cid: i for i, (cid, _) in enumerate(frames)}
            got: list[bytes | None] = [None] * len(frames)
            while pending:
                cid, body = self._read_one()
                if cid not in pending:
                    raise WireError(f"{self.addr}: answer with unknown correlation id {cid} (api {api})")
                got[pending.pop(cid)] = body
            out.extend(b for b in got if b is not None)
        return out

    def require(self, need: dict[int, int]) -> None:
        """ApiVersions v0: fails unless the broker accepts each api at the given version."""
        (body,) = self.pipeline(API_VERSIONS, 0, [b""], 1)
        r = Reader(body)
        err = r.take(">h")
        if err != 0:
            raise WireError(f"{self.addr}: ApiVersions error {kafka_error(err)}")
        have = {}
        for _ in range(r.count()):
            k, lo, hi = r.take(">hhh")
            have[k] = (lo, hi)
        for k, v in need.items():
            lo, hi = have.get(k, (1, 0))
            if not lo <= v <= hi:
                raise WireError(f"{self.addr}: the broker does not accept api {k} version {v} "
                                f"(it offers {have.get(k, 'none')})")


def seed_bench(s: Seeder, a: argparse.Namespace) -> dict:
    prefix = a.prefix if a.prefix is not None else "bench"
    names = [f"{prefix}-topic-{i:05d}" for i in range(a.topics)]
    report: dict = {"mode": "bench", "prefix": prefix}

    t0 = time.monotonic()
    specs = [NewTopic(n, a.partitions, 1, config=topic_overrides(i)) for i, n in enumerate(names)]
    created, existing = s.create_topics(specs, a.batch)
    dt = time.monotonic() - t0
    log(
        f"topics: {len(created)} created, {len(existing)} already existed (left as they are), "
        f"{a.topics - len(created) - len(existing)} failed; {a.partitions} partitions each; "
        f"{sum(1 for i in range(a.topics) if topic_overrides(i))} with config overrides "
        f"[{dt:.1f}s, {a.batch} per CreateTopics request]"
    )
    report.update(topics=a.topics, topics_created=len(created), topics_existing=len(existing),
                  partitions=a.topics * a.partitions, topics_seconds=round(dt, 2))

    # Messages go only into the first --message-topics topics, and only into those
    # created by this run (re-running does not double them).
    t0 = time.monotonic()
    msg_topics = names[: min(a.message_topics, a.topics)]
    payload = b"x" * a.message_size
    messages = [
        (t, p, f"k{m}".encode(), payload)
        for t in msg_topics
        if t in created
        for p in range(a.partitions)
        for m in range(a.messages)
    ]
    acked = s.produce(messages)
    dt = time.monotonic() - t0
    skipped = sum(1 for t in msg_topics if t not in created)
    log(
        f"messages: {acked} of {len(messages)} produced ({a.messages} per partition into "
        f"{len(msg_topics) - skipped} topics"
        + (f"; {skipped} pre-existing topics skipped" if skipped else "")
        + f") [{dt:.1f}s]"
    )
    report.update(messages=acked, message_topics=len(msg_topics), messages_seconds=round(dt, 2))

    # Each group commits on 1-3 topics, 1..P partitions each. Half of the groups
    # read a topic with messages (committed behind the latest offset: lag); the
    # others read empty topics (committed offset 0).
    t0 = time.monotonic()
    rng = random.Random(1234)
    groups: dict[str, list[tuple[str, int, int]]] = {}
    for g in range(a.groups):
        offs: list[tuple[str, int, int]] = []
        for j in range(1 + g % 3):
            if g % 2 == 0 and msg_topics and a.messages > 0:
                t = msg_topics[(g * 7 + j) % len(msg_topics)]
                hi = a.messages
            else:
                t = names[(g * 37 + j * 1009) % len(names)]
                hi = a.messages if t in msg_topics else 0
            for p in range(min(a.partitions, 1 + (g + j) % a.partitions)):
                offs.append((t, p, rng.randint(hi // 2, hi) if hi else 0))
        # one (topic, partition) once per group
        groups[f"{prefix}-group-{g:04d}"] = list({(t, p): (t, p, o) for t, p, o in offs}.values())
    s.commit_groups(groups, a.window)
    dt = time.monotonic() - t0
    n_offsets = sum(len(v) for v in groups.values())
    log(f"groups: {len(groups)} committed ({n_offsets} offsets, without joining) [{dt:.1f}s]")
    report.update(groups=len(groups), committed_offsets=n_offsets, groups_seconds=round(dt, 2))
    return report


def seed_sample(s: Seeder, a: argparse.Namespace) -> dict:
    prefix = a.prefix or ""
    orders, payments, customers = f"{prefix}orders", f"{prefix}payments", f"{prefix}customers"
    specs = [
        NewTopic(orders, 3, 1, config={"retention.ms": "604800000"}),  # 7 days
        NewTopic(payments, 1, 1),
        NewTopic(customers, 3, 1, config={"cleanup.policy": "compact"}),
    ]
    t0 = time.monotonic()
    created, existing = s.create_topics(specs, a.batch)
    log(
        f"topics: created {', '.join(sorted(created)) or 'none'}"
        + (f"; already there (left as they are): {', '.join(sorted(existing))}" if existing else "")
    )

    rng = random.Random(7)
    names = ["ada", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances"]
    msgs: list[tuple[str, int, bytes | None, bytes]] = []
    if orders in created:
        for i in range(60):
            o = {"order_id": 1000 + i, "customer": rng.choice(names), "amount": round(rng.uniform(5, 300), 2)}
            msgs.append((orders, i % 3, str(o["order_id"]).encode(), json.dumps(o).encode()))
    if payments in created:
        for i in range(25):
            pmt = {"payment_id": 5000 + i, "order_id": 1000 + i, "status": rng.choice(["captured", "refunded"])}
            msgs.append((payments, 0, str(pmt["payment_id"]).encode(), json.dumps(pmt).encode()))
    if customers in created:
        for i, n in enumerate(names * 2):  # each customer twice: compaction keeps the latest
            c = {"customer": n, "tier": rng.choice(["free", "pro", "enterprise"]), "version": i // len(names)}
            msgs.append((customers, i % 3, n.encode(), json.dumps(c).encode()))
    acked = s.produce(msgs)
    log(f"messages: {acked} produced" + (" (topics already existed: none produced)" if not msgs else ""))

    # orders: 20 per partition, payments: 25. Committed offsets leave some lag.
    groups = {
        "billing-service": [(orders, 0, 18), (orders, 1, 20), (orders, 2, 15), (payments, 0, 21)],
        "analytics": [(orders, 0, 5), (orders, 1, 8), (orders, 2, 10)],
    }
    s.commit_groups(groups, a.window)
    lag = {g: sum(max(0, 20 - o) if t == orders else max(0, 25 - o) for t, _, o in v) for g, v in groups.items()}
    log("groups: " + ", ".join(f"{g} (lag {l})" for g, l in lag.items()) + " committed, without joining")
    return {
        "mode": "sample",
        "topics": len(specs),
        "topics_created": len(created),
        "topics_existing": len(existing),
        "partitions": sum(t.num_partitions for t in specs),
        "messages": acked,
        "groups": len(groups),
        "committed_offsets": sum(len(v) for v in groups.values()),
        "seconds": round(time.monotonic() - t0, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port of the broker")
    ap.add_argument("--sample", action="store_true", help="small readable data set for a demo")
    ap.add_argument("--topics", type=int, default=10_000, help="number of topics (default 10000)")
    ap.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    ap.add_argument("--groups", type=int, default=500, help="number of consumer groups (default 500)")
    ap.add_argument("--messages", type=int, default=100,
                    help="messages per partition, in the first --message-topics topics (default 100)")
    ap.add_argument("--message-topics", type=int, default=200,
                    help="how many topics get messages (default 200)")
    ap.add_argument("--message-size", type=int, default=200, help="bytes per message value (default 200)")
    ap.add_argument("--prefix", default=None,
                    help="name prefix (default 'bench' for the benchmark set, none for --sample)")
    ap.add_argument("--batch", type=int, default=500, help="topics per CreateTopics request (default 500)")
    ap.add_argument("--window", type=int, default=500,
                    help="requests in flight per connection for the group offset commits (default 500)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per Kafka call (default 30)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary line at the end")
    a = ap.parse_args()
    for k in ("topics", "partitions", "batch", "window"):
        if getattr(a, k) < 1:
            ap.error(f"--{k} must be at least 1")
    for k in ("groups", "messages", "message_topics", "message_size"):
        if getattr(a, k) < 0:
            ap.error(f"--{k.replace('_', '-')} must not be negative")

    t0 = time.monotonic()
    s = Seeder(a.bootstrap, a.timeout)
    s.check_broker()
    report = seed_sample(s, a) if a.sample else seed_bench(s, a)
    report["seconds_total"] = round(time.monotonic() - t0, 2)
    report["errors"] = len(s.errors)
    for e in s.errors[:20]:
        print(f"seed: error: {e}", file=sys.stderr)
    if len(s.errors) > 20:
        print(f"seed: ... and {len(s.errors) - 20} more errors", file=sys.stderr)
    log(f"done in {report['seconds_total']:.1f}s" + (f", {len(s.errors)} error(s)" if s.errors else ""))
    if a.json:
        print(json.dumps(report), flush=True)
    return 1 if s.errors else 0


if __name__ == "__main__":
    sys.exit(main())
