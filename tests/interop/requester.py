#!/usr/bin/env python3
"""An independent requester (Python confluent-kafka) that speaks the Spring or the
SmallRye convention exactly as those frameworks do, sends requests to the reference KYC
responder, and checks every reply byte for byte.

usage: requester.py spring|smallrye BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N
Exit 0 when every request got exactly the expected reply.
"""
import json
import struct
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def kyc_score(wallet: str) -> int:
    """The KYC example's score: FNV-1a 64 of the wallet id, mod 101."""
    h = 0xCBF29CE484222325
    for b in wallet.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % 101


def main() -> int:
    style, bootstrap, request_topic, reply_topic, partition, n = sys.argv[1:7]
    partition, n = int(partition), int(n)
    if style == "spring":
        topic_h, part_h, corr_h = "kafka_replyTopic", "kafka_replyPartition", "kafka_correlationId"
    elif style == "smallrye":
        topic_h, part_h, corr_h = "REPLY_TOPIC", "REPLY_PARTITION", "REPLY_CORRELATION_ID"
    else:
        raise SystemExit(f"unknown style {style}")

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,
    })
    _, high = consumer.get_watermark_offsets(TopicPartition(reply_topic, partition), timeout=10)
    # Assign the reply partition (no shared group): replies cannot go to another instance.
    consumer.assign([TopicPartition(reply_topic, partition, high)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})

    expected = {}  # correlation id -> (key, expected payload or None, expected error code)
    cases = [(f"wallet-{i}", None) for i in range(n)]
    cases += [("unknown-42", "not_found"), ("broken", "bad_request")]
    for key, error in cases:
        if style == "spring":
            corr = uuid.uuid4().bytes  # 16 raw bytes, RFC 4122 order
        else:
            corr = str(uuid.uuid4()).encode()  # 36 ASCII bytes
        body = b"{not json" if key == "broken" else json.dumps({"wallet_id": key}).encode()
        reply = None
        if error is None:
            reply = json.dumps({"wallet_id": key, "score": kyc_score(key)}, separators=(",", ":")).encode()
        expected[corr] = (key.encode(), reply, error)
        producer.produce(
            request_topic,
            key=key.encode(),
            value=body,
            headers=[
                (topic_h, reply_topic.encode()),
                (part_h, struct.pack(">i", partition)),
                (corr_h, corr),
            ],
        )
    producer.flush(30)

    problems, verified, ignored = [], 0, 0
    deadline = time.time() + 90
    while expected and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        headers = msg.headers() or []
        names = [k for k, _ in headers]
        if style == "smallrye" and "REPLY_TOPIC" in names:
            ignored += 1  # SmallRye takes such a record for a request
            continue
        corr = dict(headers).get(corr_h)
        if corr not in expected:
            continue
        key, reply, error = expected.pop(corr)
        where = f"reply to {key.decode()}"
        if msg.partition() != partition:
            problems.append(f"{where}: partition {msg.partition()}, expected {partition}")
        if msg.key() != key:
            problems.append(f"{where}: key {msg.key()!r}")
        if names.count(corr_h) != 1:
            problems.append(f"{where}: correlation header {names.count(corr_h)} times")
        if error is None:
            if msg.value() != reply:
                problems.append(f"{where}: payload {msg.value()!r}, expected {reply!r}")
            if "responder-error-code" in names:
                problems.append(f"{where}: unexpected error headers")
        else:
            code = dict(headers).get("responder-error-code")
            if code != error.encode():
                problems.append(f"{where}: error code {code!r}, expected {error}")
            if style == "smallrye" and not dict(headers).get("REPLY_ERROR"):
                problems.append(f"{where}: no REPLY_ERROR header")
        verified += 1
    for corr, (key, _, _) in expected.items():
        problems.append(f"no reply to {key.decode()} (correlation {corr!r})")
    consumer.close()
    print(f"{style}: {len(cases)} requests, {verified} replies verified, "
          f"{len(problems)} problems, {ignored} replies ignored for carrying REPLY_TOPIC")
    for p in problems:
        print("  " + p)
    return 1 if problems or ignored else 0


if __name__ == "__main__":
    sys.exit(main())
