#!/usr/bin/env python3
"""Plays a partner (an ISP) reading its Fleuve export topic with Confluent's Python client.

  partner.py --bootstrap HOST:PORT --registry URL --partner ID

Reads `export.<partner>.catalog` from the beginning up to its end offsets (taken when it
starts), deserializes every value with AvroDeserializer against the registry (the schema id
is in each record's Confluent frame), and folds the records as a compacted topic's reader
does: the last value per key wins, a tombstone (null value) removes the key. Prints one
JSON document: {"items": {content_id: record, ...}, "records": n, "tombstones": m,
"log": [[content_id, has_value], ...]} (the log in read order).
Exits non-zero with a message on any failure, including a record it cannot decode or a key
that differs from the record's content_id.
"""
import argparse
import datetime
import json
import sys
import uuid

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(value):
    """Deserialized Avro values as JSON-friendly values (timestamp → epoch ms)."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--partner", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    topic = f"export.{args.partner}.catalog"

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"partner-{args.partner}-{uuid.uuid4()}",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(topic, timeout=10)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        sys.exit(f"partner: topic {topic} does not exist")
    # Next offset to reach per partition (the end offsets now).
    ends = {}
    assignment = []
    for p in metadata.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
        assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
    consumer.assign(assignment)

    items = {}
    log = []
    records = 0
    tombstones = 0
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=args.timeout)
    while ends:
        if datetime.datetime.now() > deadline:
            sys.exit(f"partner: partitions {sorted(ends)} not read to their end within {args.timeout} s")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"partner: {msg.error()}")
        records += 1
        key = msg.key().decode("utf-8")
        log.append([key, msg.value() is not None])
        if msg.value() is None:
            tombstones += 1
            items.pop(key, None)
        else:
            record = plain(deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)))
            if record["content_id"] != key:
                sys.exit(f"partner: key {key!r} holds content {record['content_id']!r}")
            items[key] = record
        if msg.offset() + 1 >= ends.get(msg.partition(), 0):
            ends.pop(msg.partition(), None)
    consumer.close()
    print(json.dumps({"items": items, "records": records, "tombstones": tombstones, "log": log}, sort_keys=True))


if __name__ == "__main__":
    main()
