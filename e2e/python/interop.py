#!/usr/bin/env python3
"""Plays a polyglot service against Fleuve with Confluent's Python client.

  interop.py --bootstrap HOST:PORT --registry URL --schema FILE --topic T \
             --produce N --user USER --expect-ids FILE

1. Serializes N PlaybackProgressed events with AvroSerializer against Fleuve's registry
   (TopicRecordNameStrategy, like Fleuve) and produces them, keyed by user id.
2. Reads the whole topic back and deserializes every record with AvroDeserializer.
3. Prints one JSON line per record: {"event_id", "fields", "written_by": "python"|"other"},
   then a summary line {"produced": [...ids...]}.
Exits non-zero with a message on any failure, including a record it cannot decode.
"""
import argparse
import datetime
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(value):
    """Deserialized Avro values as JSON-friendly values (uuid → str, timestamp → epoch ms)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--produce", type=int, default=0)
    ap.add_argument("--user", default="py-user")
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    with open(args.schema, encoding="utf-8") as f:
        schema_str = f.read()
    serializer = AvroSerializer(
        registry,
        schema_str,
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    deserializer = AvroDeserializer(registry)

    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"})
    produced = []
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
    for i in range(args.produce):
        event = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": now_ms + i,
            "producer": "python-interop",
            "correlation_id": None,
            "user_id": args.user,
            "content_id": f"py-c-{i}",
            "position_ms": 1000 * (i + 1),
            "duration_ms": 3_600_000,
            "device": "python",
        }
        value = serializer(event, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(
            args.topic,
            key=args.user.encode(),
            value=value,
            headers={"event_type": "PlaybackProgressed", "event_id": event["event_id"]},
            on_delivery=delivered,
        )
        produced.append(event["event_id"])
    if producer.flush(30) != 0 or errors:
        sys.exit(f"python producer: not every record was acknowledged: {errors}")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"interop-{uuid.uuid4()}",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = metadata.topics[args.topic].partitions
    remaining = 0
    assignment = []
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
        remaining += high - low
        assignment.append(TopicPartition(args.topic, p, low))
    consumer.assign(assignment)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
    while remaining > 0:
        if datetime.datetime.now() > deadline:
            sys.exit(f"python consumer: {remaining} records not read within 60 s")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"python consumer: {msg.error()}")
        remaining -= 1
        record = deserializer(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
        fields = plain(record)
        print(json.dumps({
            "event_id": fields["event_id"],
            "fields": fields,
            "written_by": "python" if fields["event_id"] in produced else "other",
        }))
    consumer.close()
    print(json.dumps({"produced": produced}))


if __name__ == "__main__":
    main()
