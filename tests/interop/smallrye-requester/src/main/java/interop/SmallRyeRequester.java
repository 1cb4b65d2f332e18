package interop;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;

import jakarta.inject.Inject;

import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Message;

import io.quarkus.runtime.QuarkusApplication;
import io.smallrye.reactive.messaging.kafka.KafkaConsumer;
import io.smallrye.reactive.messaging.kafka.api.IncomingKafkaRecordMetadata;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import io.smallrye.reactive.messaging.kafka.reply.KafkaRequestReply;
import io.smallrye.reactive.messaging.kafka.reply.KafkaRequestReplyTimeoutException;

/**
 * A requester built on the real SmallRye Reactive Messaging {@link KafkaRequestReply} in a
 * Quarkus command-mode application: with {@code reply.partition} set, the library assigns its
 * reply consumer to that one partition and writes {@code REPLY_TOPIC}, {@code REPLY_PARTITION}
 * (4-byte big-endian) and {@code REPLY_CORRELATION_ID} (36 ASCII bytes of a UUID, the default
 * {@code uuid} handler) into every request. It ignores any reply carrying {@code REPLY_TOPIC}.
 * Error replies fail the request's Uni through {@link ResponderErrors}, the configured
 * {@code ReplyFailureHandler}.
 *
 * <p>Prints {@code smallrye: <N+2> requests, <N+2> replies verified, 0 problems} and exits 0
 * when every request got exactly the expected reply; otherwise prints one problem a line and
 * exits 1.
 */
public class SmallRyeRequester implements QuarkusApplication {

	private static final Duration REPLY_TIMEOUT = Duration.ofSeconds(30);

	@Inject
	@Channel("kyc")
	KafkaRequestReply<String, String> requester;

	@ConfigProperty(name = "mp.messaging.outgoing.kyc.topic")
	String requestTopic;

	@ConfigProperty(name = "mp.messaging.outgoing.kyc.reply.topic")
	String replyTopic;

	@ConfigProperty(name = "mp.messaging.outgoing.kyc.reply.partition")
	int replyPartition;

	@ConfigProperty(name = "mp.messaging.outgoing.kyc.reply.timeout")
	long replyTimeoutMs;

	@ConfigProperty(name = "mp.messaging.outgoing.kyc.reply.group.id")
	String groupId;

	/** The KYC example's score: FNV-1a 64 of the wallet id's bytes, mod 101 (unsigned). */
	static long kycScore(String wallet) {
		long h = 0xcbf29ce484222325L;
		for (byte b : wallet.getBytes(StandardCharsets.UTF_8)) {
			h ^= (b & 0xff);
			h *= 0x100000001b3L;
		}
		return Long.remainderUnsigned(h, 101);
	}

	static String header(Headers headers, String name) {
		Header h = headers.lastHeader(name);
		return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
	}

	static String correlationHex(Headers headers) {
		Header h = headers.lastHeader(KafkaRequestReply.DEFAULT_REPLY_CORRELATION_ID_HEADER);
		return h == null ? "(none)" : HexFormat.of().formatHex(h.value());
	}

	/** Resolves the reply consumer's position on its polling thread (a blocking ListOffsets). */
	static <K> long resolvePosition(KafkaConsumer<K, String> consumer, TopicPartition partition) {
		Function<Consumer<K, String>, Long> position = c -> c.position(partition);
		return consumer.runOnPollingThread(position).await().atMost(REPLY_TIMEOUT);
	}

	record Case(String key, String value, String expectedReply, String expectedError) {
	}

	@Override
	public int run(String... args) throws Exception {
		int n = Integer.parseInt(args[4]);
		String label = "smallrye";
		long started = System.nanoTime();
		List<String> problems = new ArrayList<>();
		int verified = 0;
		if (replyTimeoutMs != REPLY_TIMEOUT.toMillis()) {
			problems.add("reply.timeout is " + replyTimeoutMs + " ms, expected " + REPLY_TIMEOUT.toMillis());
		}

		List<Case> cases = new ArrayList<>();
		for (int i = 0; i < n; i++) {
			String wallet = "wallet-q" + i;
			cases.add(new Case(wallet, "{\"wallet_id\":\"" + wallet + "\"}",
					"{\"wallet_id\":\"" + wallet + "\",\"score\":" + kycScore(wallet) + "}", null));
		}
		cases.add(new Case("unknown-9", "{\"wallet_id\":\"unknown-9\"}", null, "not_found"));
		cases.add(new Case("broken", "{broken", null, "bad_request"));

		try {
			// The reply consumer is assigned our partition only; resolve its position (latest)
			// before sending, so that no reply can land before it.
			TopicPartition ours = new TopicPartition(replyTopic, replyPartition);
			Set<TopicPartition> assigned = requester.waitForAssignments().await().atMost(REPLY_TIMEOUT);
			if (!assigned.equals(Set.of(ours))) {
				problems.add("reply consumer assigned " + assigned + ", expected " + ours);
			}
			long assignedMs = (System.nanoTime() - started) / 1_000_000;
			resolvePosition(requester.getConsumer(), ours);
			long positionMs = (System.nanoTime() - started) / 1_000_000;

			// Send every request first, then collect: the library matches replies by correlation id.
			List<CompletableFuture<Message<String>>> futures = new ArrayList<>();
			for (Case c : cases) {
				Message<String> request = Message.of(c.value())
						.addMetadata(OutgoingKafkaRecordMetadata.<String> builder().withKey(c.key()).build());
				futures.add(requester.request(request).subscribeAsCompletionStage());
			}

			long sentMs = (System.nanoTime() - started) / 1_000_000;
			for (int i = 0; i < cases.size(); i++) {
				Case c = cases.get(i);
				String where = "reply to " + c.key();
				try {
					// The library fails the Uni itself after reply.timeout; the bound here only
					// guards against one that never completes.
					Message<String> reply = futures.get(i).get(REPLY_TIMEOUT.toSeconds() + 30, TimeUnit.SECONDS);
					verified++;
					if (c.expectedError() != null) {
						problems.add(where + ": a normal reply (" + reply.getPayload() + "), expected error "
								+ c.expectedError());
						continue;
					}
					IncomingKafkaRecordMetadata<?, ?> meta = reply.getMetadata(IncomingKafkaRecordMetadata.class)
							.orElse(null);
					if (meta == null) {
						problems.add(where + ": no IncomingKafkaRecordMetadata");
						continue;
					}
					if (meta.getPartition() != replyPartition) {
						problems.add(where + ": partition " + meta.getPartition() + ", expected " + replyPartition);
					}
					if (!replyTopic.equals(meta.getTopic())) {
						problems.add(where + ": topic " + meta.getTopic());
					}
					if (!c.key().equals(meta.getKey())) {
						problems.add(where + ": key " + meta.getKey());
					}
					if (!c.expectedReply().equals(reply.getPayload())) {
						problems.add(where + ": payload " + reply.getPayload() + ", expected " + c.expectedReply());
					}
					if (header(meta.getHeaders(), "responder-error-code") != null
							|| header(meta.getHeaders(), "REPLY_ERROR") != null) {
						problems.add(where + ": error headers on a normal reply");
					}
				}
				catch (ExecutionException e) {
					Throwable cause = e.getCause();
					if (cause instanceof ResponderErrors.ResponderErrorException err) {
						verified++;
						if (c.expectedError() == null) {
							problems.add(where + ": error reply " + err.getMessage());
						}
						else {
							if (!c.expectedError().equals(err.code)) {
								problems.add(where + ": error code " + err.code + ", expected " + c.expectedError());
							}
							if (err.replyError == null || err.replyError.isEmpty()) {
								problems.add(where + ": error reply without REPLY_ERROR");
							}
							if (!c.key().equals(err.key)) {
								problems.add(where + ": error reply key " + err.key);
							}
							if (err.partition != replyPartition) {
								problems.add(where + ": error reply on partition " + err.partition);
							}
						}
					}
					else if (cause instanceof KafkaRequestReplyTimeoutException) {
						problems.add(where + ": timed out after " + replyTimeoutMs + " ms");
					}
					else {
						problems.add(where + ": failed: " + cause);
					}
				}
				catch (TimeoutException e) {
					problems.add(where + ": future never completed");
				}
			}

			System.err.printf("%s: assigned at %d ms, position at %d ms, requests subscribed at %d ms, replies at %d ms%n",
					label, assignedMs, positionMs, sentMs, (System.nanoTime() - started) / 1_000_000);

			// What the library wrote into the requests.
			List<String> sentCorrelations = new ArrayList<>();
			byte[] partitionBytes = ByteBuffer.allocate(4).putInt(replyPartition).array();
			for (ProducerRecord<?, ?> r : Spies.SENT) {
				Headers h = r.headers();
				Header corr = h.lastHeader(KafkaRequestReply.DEFAULT_REPLY_CORRELATION_ID_HEADER);
				if (corr == null || corr.value().length != 36) {
					problems.add("request " + r.key() + ": REPLY_CORRELATION_ID "
							+ (corr == null ? "missing" : corr.value().length + " bytes") + ", expected 36 bytes");
				}
				sentCorrelations.add(correlationHex(h));
				if (!replyTopic.equals(header(h, KafkaRequestReply.DEFAULT_REPLY_TOPIC_HEADER))) {
					problems.add("request " + r.key() + ": REPLY_TOPIC " + header(h, "REPLY_TOPIC"));
				}
				Header part = h.lastHeader(KafkaRequestReply.DEFAULT_REPLY_PARTITION_HEADER);
				if (part == null || !Arrays.equals(part.value(), partitionBytes)) {
					problems.add("request " + r.key() + ": REPLY_PARTITION not the 4-byte " + replyPartition);
				}
			}
			if (sentCorrelations.size() != cases.size()) {
				problems.add("the producer sent " + sentCorrelations.size() + " records, expected " + cases.size());
			}

			// Nothing but our own replies may reach a consumer assigned to our partition.
			List<ConsumerRecord<?, ?>> received = new ArrayList<>(Spies.RECEIVED);
			for (ConsumerRecord<?, ?> r : received) {
				String hex = correlationHex(r.headers());
				if (!sentCorrelations.contains(hex)) {
					problems.add("foreign record on " + r.topic() + "-" + r.partition() + "@" + r.offset() + " key "
							+ r.key() + " correlation " + hex);
				}
				if (r.headers().lastHeader(KafkaRequestReply.DEFAULT_REPLY_TOPIC_HEADER) != null) {
					problems.add("reply " + r.key() + " carries REPLY_TOPIC (SmallRye ignores it)");
				}
			}
			if (received.size() != cases.size()) {
				problems.add("the reply consumer received " + received.size() + " records, expected " + cases.size());
			}
		}
		catch (Exception e) {
			problems.add("requester failed: " + e);
		}

		System.out.println(label + ": " + cases.size() + " requests, " + verified + " replies verified, "
				+ problems.size() + " problems");
		for (String p : problems) {
			System.out.println("  " + p);
		}
		System.err.printf("%s: %d ms on %s-%d, group %s%n", label, (System.nanoTime() - started) / 1_000_000,
				replyTopic, replyPartition, groupId);
		System.out.flush();
		return problems.isEmpty() ? 0 : 1;
	}

}
