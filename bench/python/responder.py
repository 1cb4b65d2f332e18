"""The "python" contestant: the KYC responder written with confluent-kafka, as a team
would write it instead of using the framework.

Consumes in batches (without waiting to fill one), decodes, scores, encodes and produces the reply to the topic and
partition the Spring headers name (same allow-list prefix) without waiting for each
send; delivery callbacks settle requests, and offsets are stored in order per partition
once every earlier reply is acknowledged (auto-commit commits them). At most 1024
replies in flight. Configured like the KYC service (KAFKA_BOOTSTRAP_SERVERS,
RESPONDER_GROUP_ID, RESPONDER_FETCH_WAIT_MS); serves until stdin closes.
"""

import collections
import json
import os
import struct
import sys
import threading

from confluent_kafka import Consumer, Producer, TopicPartition

REQUEST_TOPIC = "WALLET-KYC-REQUEST"
ALLOWED_REPLY_PREFIX = "WALLET-KYC-RESPONSE"
MAX_IN_FLIGHT = 1024


def score(wallet_id):
    """FNV-1a of the wallet id, modulo 101 (as the KYC handler)."""
    h = 0xCBF29CE484222325
    for b in wallet_id.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % 101


class Responder:
    def __init__(self):
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        consumer_config = {
            "bootstrap.servers": bootstrap,
            "group.id": os.environ.get("RESPONDER_GROUP_ID", "kyc"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            # The framework's bounded prefetch, so all run with the same client settings.
            "queued.min.messages": 2000,
            "queued.max.messages.kbytes": 16384,
            "max.partition.fetch.bytes": 262144,
            "fetch.queue.backoff.ms": 10,
        }
        if "RESPONDER_FETCH_WAIT_MS" in os.environ:
            consumer_config["fetch.wait.max.ms"] = int(os.environ["RESPONDER_FETCH_WAIT_MS"])
        self.consumer = Consumer(consumer_config)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 0,
                "message.timeout.ms": 120000,
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        # Per partition: offsets in flight in order, and the set of settled ones.
        self.pending = collections.defaultdict(collections.deque)
        self.settled = collections.defaultdict(set)
        self.in_flight = 0

    def settle(self, partition, offset):
        self.in_flight -= 1
        queue, done = self.pending[partition], self.settled[partition]
        done.add(offset)
        last = None
        while queue and queue[0] in done:
            last = queue.popleft()
            done.discard(last)
        if last is not None:
            self.consumer.store_offsets(offsets=[TopicPartition(REQUEST_TOPIC, partition, last + 1)])

    def respond(self, m):
        partition, offset = m.partition(), m.offset()
        self.pending[partition].append(offset)
        self.in_flight += 1
        topic = reply_partition = correlation = None
        for k, v in m.headers() or ():
            if k == "kafka_replyTopic" and topic is None:
                topic = v
            elif k == "kafka_replyPartition" and reply_partition is None:
                reply_partition = v
            elif k == "kafka_correlationId" and correlation is None:
                correlation = v
        try:
            topic = topic.decode()
            if not topic.startswith(ALLOWED_REPLY_PREFIX):
                raise ValueError(f"reply topic {topic} not allowed")
            (reply_partition,) = struct.unpack(">i", reply_partition)
            if reply_partition < 0 or correlation is None:
                raise ValueError("bad reply address")
            query = json.loads(m.value())
            wallet_id = query["wallet_id"]
            reply = {"wallet_id": wallet_id, "score": score(wallet_id)}
            if query.get("documents"):
                reply["documents"] = query["documents"]
            body = json.dumps(reply, separators=(",", ":"))
        except Exception as e:  # a bad request is logged and settled, never fatal
            print(f"request {partition}/{offset}: {e}", file=sys.stderr)
            self.settle(partition, offset)
            return

        def delivered(err, _msg):
            if err is not None:
                print(f"reply not delivered: {err}", file=sys.stderr)
            self.settle(partition, offset)

        while True:
            try:
                self.producer.produce(
                    topic,
                    value=body,
                    key=m.key(),
                    partition=reply_partition,
                    headers=[("kafka_correlationId", correlation)],
                    on_delivery=delivered,
                )
                break
            except BufferError:
                self.producer.poll(0.001)

    def run(self, stop):
        self.consumer.subscribe([REQUEST_TOPIC])
        while not stop.is_set():
            self.producer.poll(0)
            if self.in_flight >= MAX_IN_FLIGHT:
                self.producer.poll(0.1)
                continue
            # One blocking poll, then whatever else is already fetched (consume() with a
            # timeout waits for a full batch, which would add its timeout to latency).
            first = self.consumer.poll(0.1)
            if first is None:
                continue
            batch = [first]
            if self.in_flight + 1 < MAX_IN_FLIGHT:
                batch += self.consumer.consume(num_messages=MAX_IN_FLIGHT - self.in_flight - 1, timeout=0)
            for m in batch:
                if m.error():
                    print(f"consumer: {m.error()}", file=sys.stderr)
                else:
                    self.respond(m)
        while self.in_flight > 0:
            self.producer.poll(0.1)
        try:
            self.consumer.commit(asynchronous=False)
        except Exception as e:
            print(f"final commit: {e}", file=sys.stderr)
        self.consumer.close()


def main():
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    Responder().run(stop)


if __name__ == "__main__":
    main()
