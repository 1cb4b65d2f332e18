package interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.listener.ContainerProperties;
import org.springframework.kafka.listener.KafkaMessageListenerContainer;
import org.springframework.kafka.requestreply.KafkaReplyTimeoutException;
import org.springframework.kafka.requestreply.ReplyingKafkaTemplate;
import org.springframework.kafka.requestreply.RequestReplyFuture;
import org.springframework.kafka.support.KafkaHeaders;
import org.springframework.kafka.support.TopicPartitionOffset;
import org.springframework.kafka.support.converter.MessagingMessageConverter;
import org.springframework.messaging.Message;

/**
 * A requester built on the real Spring for Apache Kafka {@link ReplyingKafkaTemplate}: its
 * reply container is pinned to one partition of the reply topic, so the template itself
 * writes {@code kafka_replyTopic}, {@code kafka_replyPartition} (4-byte big-endian) and
 * {@code kafka_correlationId} (16 raw bytes, or the dashed UUID text with
 * {@code binaryCorrelation=false}). Error replies surface through a {@code replyErrorChecker}
 * reading the responder's {@code responder-error-code} / {@code responder-error-message}.
 *
 * <p>usage: java -jar spring-requester.jar BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N
 * binary|string
 *
 * <p>Prints {@code spring(<correlation>): <N+2> requests, <N+2> replies verified, 0 problems}
 * and exits 0 when every request got exactly the expected reply; otherwise prints one problem a
 * line and exits 1.
 */
public final class SpringRequester {

	private static final Duration REPLY_TIMEOUT = Duration.ofSeconds(30);

	/** What the replyErrorChecker turns an error reply into. */
	static final class ResponderErrorException extends RuntimeException {

		final String code;

		final String key;

		ResponderErrorException(String code, String message, String key) {
			super(code + ": " + message);
			this.code = code;
			this.key = key;
		}

	}

	/** The template, counting every record its reply container hands it (ours or not). */
	static final class ObservedTemplate extends ReplyingKafkaTemplate<String, String, String> {

		final List<ConsumerRecord<String, String>> received = new ArrayList<>();

		ObservedTemplate(DefaultKafkaProducerFactory<String, String> producers,
				KafkaMessageListenerContainer<String, String> container) {
			super(producers, container);
		}

		@Override
		public void onMessage(List<ConsumerRecord<String, String>> data) {
			synchronized (this.received) {
				this.received.addAll(data);
			}
			super.onMessage(data);
		}

	}

	/** The KYC example's score: FNV-1a 64 of the wallet id's bytes, mod 101 (unsigned). */
	static long kycScore(String wallet) {
		long h = 0xcbf29ce484222325L;
		for (byte b : wallet.getBytes(StandardCharsets.UTF_8)) {
			h ^= (b & 0xff);
			h *= 0x100000001b3L;
		}
		return Long.remainderUnsigned(h, 101);
	}

	static String header(ConsumerRecord<?, ?> record, String name) {
		Header h = record.headers().lastHeader(name);
		return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
	}

	record Case(String key, String value, String expectedReply, String expectedError) {
	}

	public static void main(String[] args) throws Exception {
		System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
		System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
		if (args.length != 6 || !(args[5].equals("binary") || args[5].equals("string"))) {
			System.err.println("usage: SpringRequester BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N"
					+ " binary|string");
			System.exit(2);
		}
		String bootstrap = args[0];
		String requestTopic = args[1];
		String replyTopic = args[2];
		int replyPartition = Integer.parseInt(args[3]);
		int n = Integer.parseInt(args[4]);
		boolean binary = args[5].equals("binary");
		String label = "spring(" + args[5] + ")";
		long started = System.nanoTime();

		Map<String, Object> producerProps = new HashMap<>();
		producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
		producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
		producerProps.put(ProducerConfig.LINGER_MS_CONFIG, 1);
		DefaultKafkaProducerFactory<String, String> producers = new DefaultKafkaProducerFactory<>(producerProps);

		String groupId = "interop-spring-" + UUID.randomUUID();
		Map<String, Object> consumerProps = new HashMap<>();
		consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
		consumerProps.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
		consumerProps.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
		consumerProps.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 10);
		DefaultKafkaConsumerFactory<String, String> consumers = new DefaultKafkaConsumerFactory<>(consumerProps);

		// Pinned to exactly one partition, starting at its end: the template then sends
		// kafka_replyPartition, and the responder must answer on that partition.
		ContainerProperties containerProps = new ContainerProperties(
				new TopicPartitionOffset(replyTopic, replyPartition, TopicPartitionOffset.SeekPosition.END));
		containerProps.setGroupId(groupId);
		containerProps.setPollTimeout(200);
		containerProps.setShutdownTimeout(5000);
		KafkaMessageListenerContainer<String, String> container =
				new KafkaMessageListenerContainer<>(consumers, containerProps);

		ObservedTemplate template = new ObservedTemplate(producers, container);
		template.setDefaultReplyTimeout(REPLY_TIMEOUT);
		template.setBinaryCorrelation(binary);
		template.setReplyErrorChecker(record -> {
			String code = header(record, "responder-error-code");
			if (code == null) {
				return null; // a normal reply
			}
			String message = header(record, "responder-error-message");
			Object key = record.key();
			return new ResponderErrorException(code, message == null ? "" : message,
					key == null ? null : key.toString());
		});

		List<String> problems = new ArrayList<>();
		int verified = 0;
		List<Case> cases = new ArrayList<>();
		for (int i = 0; i < n; i++) {
			String wallet = "wallet-s" + i;
			cases.add(new Case(wallet, "{\"wallet_id\":\"" + wallet + "\"}",
					"{\"wallet_id\":\"" + wallet + "\",\"score\":" + kycScore(wallet) + "}", null));
		}
		cases.add(new Case("unknown-9", "{\"wallet_id\":\"unknown-9\"}", null, "not_found"));
		cases.add(new Case("broken", "{broken", null, "bad_request"));

		try {
			template.start();
			if (!template.waitForAssignment(Duration.ofSeconds(30))) {
				problems.add("reply container was not assigned " + replyTopic + "-" + replyPartition + " in 30 s");
			}

			// Send every request first, then collect: the template matches replies by correlation.
			List<RequestReplyFuture<String, String, String>> futures = new ArrayList<>();
			Set<String> ours = ConcurrentHashMap.newKeySet();
			for (Case c : cases) {
				ProducerRecord<String, String> request = new ProducerRecord<>(requestTopic, c.key(), c.value());
				futures.add(template.sendAndReceive(request));
				// sendAndReceive wrote the reply address and correlation into the request.
				byte[] corr = request.headers().lastHeader(KafkaHeaders.CORRELATION_ID).value();
				ours.add(HexFormat.of().formatHex(corr));
				if (binary && corr.length != 16) {
					problems.add("request " + c.key() + ": binary correlation id of " + corr.length + " bytes");
				}
				if (!binary && corr.length != 36) {
					problems.add("request " + c.key() + ": string correlation id of " + corr.length + " bytes");
				}
				Header part = request.headers().lastHeader(KafkaHeaders.REPLY_PARTITION);
				if (part == null || !Arrays.equals(part.value(),
						java.nio.ByteBuffer.allocate(4).putInt(replyPartition).array())) {
					problems.add("request " + c.key() + ": the template did not send kafka_replyPartition");
				}
			}

			MessagingMessageConverter converter = new MessagingMessageConverter();
			for (int i = 0; i < cases.size(); i++) {
				Case c = cases.get(i);
				RequestReplyFuture<String, String, String> future = futures.get(i);
				String where = "reply to " + c.key();
				try {
					future.getSendFuture().get(30, TimeUnit.SECONDS);
					// The template completes the future itself after REPLY_TIMEOUT; the bound here
					// only guards against a future that never completes.
					ConsumerRecord<String, String> reply = future.get(REPLY_TIMEOUT.toSeconds() + 30, TimeUnit.SECONDS);
					verified++;
					if (c.expectedError() != null) {
						problems.add(where + ": a normal reply (" + reply.value() + "), expected error "
								+ c.expectedError());
						continue;
					}
					Message<?> message = converter.toMessage(reply, null, null, String.class);
					Object partition = message.getHeaders().get(KafkaHeaders.RECEIVED_PARTITION);
					if (!Integer.valueOf(replyPartition).equals(partition) || reply.partition() != replyPartition) {
						problems.add(where + ": partition " + partition + ", expected " + replyPartition);
					}
					if (!replyTopic.equals(reply.topic())) {
						problems.add(where + ": topic " + reply.topic());
					}
					if (!c.key().equals(reply.key())) {
						problems.add(where + ": key " + reply.key());
					}
					if (!c.expectedReply().equals(reply.value())) {
						problems.add(where + ": payload " + reply.value() + ", expected " + c.expectedReply());
					}
				}
				catch (ExecutionException e) {
					Throwable cause = e.getCause();
					if (cause instanceof ResponderErrorException err) {
						verified++;
						if (c.expectedError() == null) {
							problems.add(where + ": error reply " + err.getMessage());
						}
						else {
							if (!c.expectedError().equals(err.code)) {
								problems.add(where + ": error code " + err.code + ", expected " + c.expectedError());
							}
							if (!c.key().equals(err.key)) {
								problems.add(where + ": error reply key " + err.key);
							}
						}
					}
					else if (cause instanceof KafkaReplyTimeoutException) {
						problems.add(where + ": timed out after " + REPLY_TIMEOUT.toSeconds() + " s");
					}
					else {
						problems.add(where + ": failed: " + cause);
					}
				}
				catch (TimeoutException e) {
					problems.add(where + ": future never completed");
				}
			}

			// Nothing but our own replies may reach a container pinned to our partition.
			synchronized (template.received) {
				for (ConsumerRecord<String, String> r : template.received) {
					Header corr = r.headers().lastHeader(KafkaHeaders.CORRELATION_ID);
					String hex = corr == null ? "(none)" : HexFormat.of().formatHex(corr.value());
					if (!ours.contains(hex)) {
						problems.add("foreign record on " + r.topic() + "-" + r.partition() + "@" + r.offset()
								+ " key " + r.key() + " correlation " + hex);
					}
					if (r.headers().lastHeader(KafkaHeaders.REPLY_TOPIC) != null) {
						problems.add("reply " + r.key() + " carries kafka_replyTopic");
					}
				}
				if (template.received.size() != cases.size()) {
					problems.add("the reply container received " + template.received.size() + " records, expected "
							+ cases.size());
				}
			}
		}
		catch (Exception e) {
			problems.add("requester failed: " + e);
		}
		finally {
			try {
				template.stop();
				template.destroy();
				producers.destroy();
			}
			catch (Exception e) {
				System.err.println("shutdown: " + e);
			}
		}

		System.out.println(label + ": " + cases.size() + " requests, " + verified + " replies verified, "
				+ problems.size() + " problems");
		for (String p : problems) {
			System.out.println("  " + p);
		}
		System.err.printf("%s: %d ms on %s-%d, group %s%n", label, (System.nanoTime() - started) / 1_000_000,
				replyTopic, replyPartition, groupId);
		System.out.flush();
		System.exit(problems.isEmpty() ? 0 : 1);
	}

}
