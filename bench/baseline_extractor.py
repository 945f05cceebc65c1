#!/usr/bin/env python3
"""The straightforward per-topic extractor krawl is benchmarked against.

This is what a Python metadata connector built on confluent-kafka typically
does, written plainly and without deliberate slowness:

1. list the topics through Metadata (skipping internal `__*` topics, as
   `krawl extract` does by default);
2. with WORKERS threads (5 by default), for EACH topic: one DescribeConfigs
   call (`AdminClient.describe_configs([ConfigResource(TOPIC, name)])`) and the
   watermarks of each of its partitions
   (`Consumer.get_watermark_offsets(TopicPartition(t, p))`, which sends
   ListOffsets; no group is joined: one Consumer per worker, never subscribed);
3. the consumer groups: `list_consumer_groups`, `describe_consumer_groups`
   (all listed groups in one call), then `list_consumer_group_offsets` one
   group at a time (the confluent-kafka API takes one group per request), with
   the lag computed from the watermarks of step 2.

It writes one JSON line per topic and per group to --output (so the work is
comparable with krawl's NDJSON) and prints the counts and elapsed times as
text to stderr and as one JSON line to stdout.

    python3 bench/baseline_extractor.py --bootstrap 127.0.0.1:9092 --output /tmp/baseline.ndjson
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time

try:
    from confluent_kafka import (
        ConsumerGroupTopicPartitions,
        Consumer,
        KafkaException,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "baseline_extractor.py: the Python package confluent-kafka is not installed.\n"
        "         install it with:  python3 -m pip install confluent-kafka\n"
    )
    sys.exit(2)


def main() -> int:
    ap = argparse.ArgumentParser(description="per-topic Kafka metadata extractor (benchmark baseline)")
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--output", required=True, help="NDJSON output file")
    ap.add_argument("--workers", type=int, default=5, help="worker threads for the topics (default 5)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per Kafka call (default 30)")
    a = ap.parse_args()

    t_start = time.monotonic()
    phases: dict[str, float] = {}
    errors: list[str] = []
    err_lock = threading.Lock()
    out = open(a.output, "w", encoding="utf-8")
    out_lock = threading.Lock()

    def write(obj: dict) -> None:
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        with out_lock:
            out.write(line)

    def error(msg: str) -> None:
        with err_lock:
            errors.append(msg)

    admin = AdminClient({"bootstrap.servers": a.bootstrap})

    # ---- 1. metadata ---------------------------------------------------------------------------
    t0 = time.monotonic()
    md = admin.list_topics(timeout=a.timeout)
    topics = sorted(
        (t for t in md.topics.values() if not t.topic.startswith("__")), key=lambda t: t.topic
    )
    write(
        {
            "kind": "cluster",
            "cluster_id": md.cluster_id,
            "controller_id": md.controller_id,
            "brokers": [{"id": b.id, "host": b.host, "port": b.port} for b in md.brokers.values()],
            "topic_count": len(md.topics),
        }
    )
    phases["metadata"] = time.monotonic() - t0

    # ---- 2. per topic: DescribeConfigs + watermarks, WORKERS threads ----------------------------
    t0 = time.monotonic()
    latest: dict[tuple[str, int], int] = {}
    latest_lock = threading.Lock()
    work: queue.Queue = queue.Queue()
    for t in topics:
        work.put(t)

    def worker(n: int) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": a.bootstrap,
                "group.id": f"krawl-baseline-watermarks-{n}",  # required by the client; never joined
                "enable.auto.commit": False,
            }
        )
        try:
            while True:
                try:
                    t = work.get_nowait()
                except queue.Empty:
                    return
                name = t.topic
                rec: dict = {"kind": "topic", "name": name, "partition_count": len(t.partitions)}
                try:
                    res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)])
                    cfg = next(iter(res.values())).result(timeout=a.timeout)
                    rec["configs"] = [
                        {
                            "name": c.name,
                            "value": None if c.is_sensitive else c.value,
                            "source": c.source,
                            "is_default": c.is_default,
                            "read_only": c.is_read_only,
                        }
                        for c in sorted(cfg.values(), key=lambda c: c.name)
                    ]
                except Exception as e:
                    rec["configs"] = []
                    error(f"describe_configs {name}: {e}")
                parts = []
                for p in sorted(t.partitions.values(), key=lambda p: p.id):
                    pr = {"partition": p.id, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)}
                    try:
                        lo, hi = consumer.get_watermark_offsets(TopicPartition(name, p.id), timeout=a.timeout)
                        pr["earliest_offset"], pr["latest_offset"] = lo, hi
                        with latest_lock:
                            latest[(name, p.id)] = hi
                    except Exception as e:
                        pr["earliest_offset"] = pr["latest_offset"] = None
                        error(f"watermarks {name}[{p.id}]: {e}")
                    parts.append(pr)
                rec["partitions"] = parts
                offs = [(p["earliest_offset"], p["latest_offset"]) for p in parts]
                rec["record_count"] = (
                    sum(hi - lo for lo, hi in offs) if all(lo is not None for lo, _ in offs) else None
                )
                write(rec)
        finally:
            consumer.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(a.workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    phases["topics"] = time.monotonic() - t0

    # ---- 3. consumer groups ---------------------------------------------------------------------
    t0 = time.monotonic()
    n_groups = 0
    try:
        listed = admin.list_consumer_groups(request_timeout=a.timeout).result(timeout=a.timeout)
        for e in listed.errors:
            error(f"list_consumer_groups: {e}")
        ids = sorted({g.group_id for g in listed.valid})
        descs = {}
        if ids:
            for gid, fut in admin.describe_consumer_groups(ids, request_timeout=a.timeout).items():
                try:
                    descs[gid] = fut.result(timeout=a.timeout)
                except Exception as e:
                    error(f"describe_consumer_groups {gid}: {e}")
        for gid in ids:
            rec: dict = {"kind": "consumer_group", "group_id": gid}
            d = descs.get(gid)
            if d is not None:
                rec["state"] = str(d.state.name) if d.state is not None else None
                rec["simple"] = d.is_simple_consumer_group
                rec["partition_assignor"] = d.partition_assignor
                rec["coordinator"] = d.coordinator.id if d.coordinator is not None else None
                rec["members"] = [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "host": m.host,
                        "assignments": [
                            {"topic": tp.topic, "partition": tp.partition}
                            for tp in (m.assignment.topic_partitions if m.assignment else [])
                        ],
                    }
                    for m in d.members
                ]
            offsets = []
            try:
                res = admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(gid)], request_timeout=a.timeout
                )
                cg = res[gid].result(timeout=a.timeout)
                for tp in cg.topic_partitions:
                    if tp.offset < 0:
                        continue
                    hi = latest.get((tp.topic, tp.partition))
                    offsets.append(
                        {
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "committed_offset": tp.offset,
                            "latest_offset": hi,
                            "lag": None if hi is None else max(0, hi - tp.offset),
                        }
                    )
            except Exception as e:
                error(f"list_consumer_group_offsets {gid}: {e}")
            rec["offsets"] = offsets
            rec["topics"] = sorted({o["topic"] for o in offsets})
            rec["total_lag"] = sum(o["lag"] or 0 for o in offsets)
            write(rec)
            n_groups += 1
    except KafkaException as e:
        error(f"list_consumer_groups: {e}")
    phases["consumer_groups"] = time.monotonic() - t0

    out.close()
    elapsed = time.monotonic() - t_start
    summary = {
        "topics": len(topics),
        "partitions": sum(len(t.partitions) for t in topics),
        "groups": n_groups,
        "errors": len(errors),
        "elapsed_s": round(elapsed, 3),
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
        "workers": a.workers,
    }
    for e in errors[:10]:
        print(f"baseline: error: {e}", file=sys.stderr)
    print(
        f"baseline: {summary['topics']} topics, {summary['partitions']} partitions, "
        f"{n_groups} groups, {len(errors)} errors in {elapsed:.2f}s "
        f"(metadata {phases['metadata']:.2f}s, topics {phases['topics']:.2f}s, "
        f"groups {phases['consumer_groups']:.2f}s)",
        file=sys.stderr,
    )
    print(json.dumps(summary), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
