// A requester written with the real NestJS client: `ClientKafka.send()` from
// `@nestjs/microservices` (on kafkajs), used as a NestJS application uses it. NestJS
// picks everything on the wire itself: the reply topic (`<REQUEST_TOPIC>.reply`), the
// reply partition (the lowest one its consumer group assigned to this instance), the
// correlation id (a random string) and the completion rule (an observable completes on a
// reply carrying `kafka_nest-is-disposed`, and fails on one carrying `kafka_nest-err`).
//
// Each request is awaited as an application awaits it, `lastValueFrom(send(..))` bounded
// by rxjs `timeout` (30 s): a reply must arrive, and its observable must complete. The
// payload NestJS hands over is checked against the KYC score; a rejected request must
// fail the observable (the library's own failure) with the error object
// `{status: 'error', code, message}` the responder puts in `kafka_nest-err`. A
// deserializer that wraps NestJS's own `KafkaResponseDeserializer` records what NestJS
// matched, to check the partition, key and `responder-error-code` of every reply.
//
// Cases: N wallets `wallet-<TAG><i>`, an unknown wallet `unknown-<TAG>` (error
// `not_found`), and a payload that is not JSON (NestJS sends a string value as it is;
// error `bad_request`). Prints `nestjs-client: <n> requests, <n> replies verified,
// <p> problems` and the problems; exits 0 only with none.
//
// usage: node nestjs_client_requester.js BOOTSTRAP REQUEST_TOPIC N [TAG [GROUP_ID]]
//   TAG (default `j`) names the wallets; GROUP_ID (default: unique per run) is the
//   consumer group NestJS suffixes with `-client`. The reply topic
//   `<REQUEST_TOPIC>.reply` must exist. Needs NODE_PATH to the node_modules that
//   scripts/install-interop fills. NESTJS_SEND_AT_MS (epoch ms) delays the sending until
//   then, for instances run together.
'use strict';
// kafkajs's one-time notice about its v2 partitioner (NestJS keeps kafkajs's default).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
require('reflect-metadata');
const crypto = require('crypto');
const microservices = require('@nestjs/microservices');
const { ClientKafka } = microservices;
// Exported from the package root since NestJS 12; NestJS 11 has it under deserializers/.
const KafkaResponseDeserializer =
  microservices.KafkaResponseDeserializer ||
  require('@nestjs/microservices/deserializers').KafkaResponseDeserializer;
const { Logger } = require('@nestjs/common');
const { lastValueFrom, timeout, tap, TimeoutError } = require('rxjs');
const { logLevel } = require('kafkajs');

const TIMEOUT_MS = 30000;

function kycScore(wallet) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(wallet)) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(h % 101n);
}

// NestJS logs (and the kafkajs logs it relays) go to stderr: stdout is the result.
const toStderr = (level) => (...args) => console.error(`[nest ${level}]`, ...args);
Logger.overrideLogger({
  log() {},
  debug() {},
  verbose() {},
  warn: toStderr('warn'),
  error: toStderr('error'),
  fatal: toStderr('fatal'),
});

function text(v) {
  if (v === null || v === undefined) return v;
  return Buffer.isBuffer(v) ? v.toString() : typeof v === 'string' ? v : JSON.stringify(v);
}

// NestJS's own deserializer, plus a record of every reply record it is given: all that
// carry `kafka_correlationId` on this instance's reply partitions, its own or not.
class RecordingDeserializer {
  constructor() {
    this.inner = new KafkaResponseDeserializer();
    this.client = null;
    this.seen = 0;
    this.foreign = 0;
    this.mine = new Map(); // request key -> { partition, key, headers }
  }

  deserialize(message, options) {
    this.seen += 1;
    const id = text(message.headers.kafka_correlationId);
    if (this.client && this.client.routingMap.has(id)) {
      const key = text(message.key);
      this.mine.set(key, { partition: message.partition, key, headers: message.headers });
    } else {
      this.foreign += 1;
    }
    return this.inner.deserialize(message, options);
  }
}

async function main() {
  const [bootstrap, requestTopic, nText, tag = 'j', groupArg] = process.argv.slice(2);
  if (!bootstrap || !requestTopic || !nText) {
    console.error('usage: node nestjs_client_requester.js BOOTSTRAP REQUEST_TOPIC N [TAG [GROUP_ID]]');
    process.exit(2);
  }
  const groupId = groupArg || `interop-nestjs-client-${crypto.randomUUID()}`;
  const replyTopic = `${requestTopic}.reply`;
  const deserializer = new RecordingDeserializer();
  const client = new ClientKafka({
    client: { clientId: `interop-nestjs-${tag}`, brokers: [bootstrap], logLevel: logLevel.WARN },
    // A short fetch wait only matters on a broker that does not wake waiting fetches
    // (the embedded test broker); Apache Kafka answers a fetch as data arrives.
    consumer: { groupId, maxWaitTimeInMs: 50 },
    deserializer,
  });
  deserializer.client = client;
  client.subscribeToResponseOf(requestTopic);
  const t0 = performance.now();
  await client.connect();
  const connectMs = performance.now() - t0;
  // NESTJS_SEND_AT_MS (epoch ms): wait until then to send, so that instances started
  // together all listen before any sends (NestJS reads replies from the end of the topic).
  const sendAt = Number(process.env.NESTJS_SEND_AT_MS || 0);
  if (sendAt > Date.now()) await new Promise((r) => setTimeout(r, sendAt - Date.now()));
  const assignments = client.getConsumerAssignments();
  const replyPartition = assignments[replyTopic];

  const cases = [];
  for (let i = 0; i < Number(nText); i++) {
    const wallet = `wallet-${tag}${i}`;
    cases.push({ key: wallet, value: { wallet_id: wallet }, error: null });
  }
  cases.push({ key: `unknown-${tag}`, value: { wallet_id: `unknown-${tag}` }, error: 'not_found' });
  cases.push({ key: `broken-${tag}`, value: '{not json', error: 'bad_request' });

  const problems = [];
  let verified = 0;
  const t1 = performance.now();
  const latencies = [];
  await Promise.all(
    cases.map(async ({ key, value, error }) => {
      const where = `reply to ${key}`;
      const values = [];
      const started = performance.now();
      let failure;
      try {
        // What a NestJS application writes (and what Nest does with an observable a
        // controller returns): wait for the last value, i.e. for completion.
        await lastValueFrom(
          client.send(requestTopic, { key, value }).pipe(
            tap((v) => values.push(v)),
            timeout(TIMEOUT_MS),
          ),
        );
      } catch (e) {
        failure = e;
      }
      latencies.push(performance.now() - started);
      const before = problems.length;
      const record = deserializer.mine.get(key);
      if (failure instanceof TimeoutError) {
        problems.push(
          values.length
            ? `${where}: ${values.length} value(s) (${text(values[0])}) but the observable did not complete within ${TIMEOUT_MS} ms` +
                (record && record.headers['kafka_nest-is-disposed'] === undefined
                  ? ' (the reply has no kafka_nest-is-disposed header)'
                  : '')
            : `${where}: no reply within ${TIMEOUT_MS} ms`,
        );
        return;
      }
      if (!record) {
        problems.push(`${where}: NestJS settled it (${failure === undefined ? 'value' : `error ${text(failure)}`}) but no reply record was seen`);
        return;
      }
      if (record.partition !== replyPartition) {
        problems.push(`${where}: on partition ${record.partition}, NestJS asked for ${replyPartition}`);
      }
      if (record.key !== key) problems.push(`${where}: key ${record.key}`);
      const code = text(record.headers['responder-error-code']);
      if (error === null) {
        const want = JSON.stringify({ wallet_id: key, score: kycScore(key) });
        if (failure !== undefined) {
          problems.push(`${where}: failed with ${text(failure)} (code ${code})`);
        } else if (values.length !== 1 || text(values[0]) !== want) {
          problems.push(`${where}: values ${values.map(text).join(' | ')}, expected ${want}`);
        }
      } else {
        if (failure === undefined) {
          problems.push(`${where}: succeeded with ${values.map(text).join(' | ')}, expected error ${error}`);
        } else {
          // NestJS fails the observable with the `kafka_nest-err` value itself, parsed:
          // the object NestJS's own exception handling sends, with the stable code.
          const message = text(record.headers['responder-error-message']);
          if (
            !failure || typeof failure !== 'object' || failure.status !== 'error' ||
            failure.code !== error || !message || failure.message !== message
          ) {
            problems.push(
              `${where}: failed with ${JSON.stringify(failure)}, expected {status: 'error', code: ${error}, message: ${message}}`,
            );
          }
          if (values.length) problems.push(`${where}: values before the error: ${values.map(text).join(' | ')}`);
        }
        if (code !== error) problems.push(`${where}: error code ${code}, expected ${error}`);
      }
      if (problems.length === before) verified += 1;
    }),
  );
  const requestsMs = performance.now() - t1;
  latencies.sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)] || 0;
  const max = latencies[latencies.length - 1] || 0;
  await client.close();

  console.log(
    `nestjs-client: ${cases.length} requests, ${verified} replies verified, ${problems.length} problems`,
  );
  for (const p of problems) console.log(`  ${p}`);
  console.log(
    `  group ${groupId}-client, reply topic ${replyTopic}, assigned partitions' minimum ${replyPartition}` +
      ` (the kafka_replyPartition NestJS sends); ${deserializer.seen} reply records seen, ` +
      `${deserializer.foreign} of them for other instances (ignored by NestJS); ` +
      `connect ${connectMs.toFixed(0)} ms, all requests ${requestsMs.toFixed(0)} ms, ` +
      `latency median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
  );
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
