// An independent requester (Node kafkajs: its own Kafka protocol implementation, not
// librdkafka) that speaks the NestJS convention: Spring's header names with text values
// (decimal partition, text correlation id); errors in `kafka_nest-err`.
//
// usage: node nestjs_requester.js BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N
const { Kafka, logLevel } = require('kafkajs');
const crypto = require('crypto');

function kycScore(wallet) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(wallet)) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(h % 101n);
}

async function main() {
  const [bootstrap, requestTopic, replyTopic, partitionText, nText] = process.argv.slice(2);
  const partition = Number(partitionText);
  const kafka = new Kafka({ clientId: 'interop-nestjs', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  const consumer = kafka.consumer({ groupId: `interop-nestjs-${crypto.randomUUID()}`, maxWaitTimeInMs: 50 });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: replyTopic, fromBeginning: true });

  const expected = new Map();
  const cases = [];
  for (let i = 0; i < Number(nText); i++) cases.push([`wallet-n${i}`, null]);
  cases.push(['unknown-9', 'not_found'], ['broken', 'bad_request']);
  const problems = [];
  let verified = 0;
  let resolveDone;
  const done = new Promise((r) => { resolveDone = r; });

  await consumer.run({
    eachMessage: async ({ partition: p, message }) => {
      const h = message.headers || {};
      const corr = h['kafka_correlationId'] && h['kafka_correlationId'].toString();
      if (!corr || !expected.has(corr)) return;
      const [key, reply, error] = expected.get(corr);
      expected.delete(corr);
      const where = `reply to ${key}`;
      if (p !== partition) problems.push(`${where}: partition ${p}, expected ${partition}`);
      if (!message.key || message.key.toString() !== key) problems.push(`${where}: key ${message.key}`);
      if (error === null) {
        if (!message.value || message.value.toString() !== reply) problems.push(`${where}: payload ${message.value}`);
      } else {
        const code = h['responder-error-code'] && h['responder-error-code'].toString();
        if (code !== error) problems.push(`${where}: error code ${code}, expected ${error}`);
        if (!h['kafka_nest-err']) problems.push(`${where}: no kafka_nest-err header`);
      }
      verified += 1;
      if (expected.size === 0) resolveDone();
    },
  });

  const messages = cases.map(([key, error]) => {
    const corr = crypto.randomUUID();
    const value = key === 'broken' ? '{not json' : JSON.stringify({ wallet_id: key });
    const reply = error === null ? JSON.stringify({ wallet_id: key, score: kycScore(key) }) : null;
    expected.set(corr, [key, reply, error]);
    return {
      key,
      value,
      headers: {
        kafka_replyTopic: replyTopic,
        kafka_replyPartition: String(partition),
        kafka_correlationId: corr,
      },
    };
  });
  await producer.send({ topic: requestTopic, messages });

  const timeout = new Promise((r) => setTimeout(r, 90000));
  await Promise.race([done, timeout]);
  for (const [corr, [key]] of expected) problems.push(`no reply to ${key} (correlation ${corr})`);
  console.log(`nestjs: ${cases.length} requests, ${verified} replies verified, ${problems.length} problems`);
  for (const p of problems) console.log(`  ${p}`);
  await consumer.disconnect();
  await producer.disconnect();
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
