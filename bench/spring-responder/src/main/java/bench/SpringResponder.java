package bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.kafka.KafkaException;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.config.KafkaListenerEndpointRegistry;
import org.springframework.kafka.core.ConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.core.ProducerFactory;
import org.springframework.kafka.listener.AcknowledgingConsumerAwareMessageListener;
import org.springframework.kafka.listener.ContainerProperties.AckMode;
import org.springframework.kafka.listener.DefaultErrorHandler;
import org.springframework.kafka.listener.MessageListener;
import org.springframework.kafka.listener.MessageListenerContainer;
import org.springframework.kafka.listener.adapter.AbstractDelegatingMessageListenerAdapter;
import org.springframework.kafka.support.Acknowledgment;
import org.springframework.kafka.support.KafkaHeaders;
import org.springframework.kafka.support.SendResult;
import org.springframework.messaging.Message;
import org.springframework.messaging.handler.annotation.SendTo;
import org.springframework.util.backoff.FixedBackOff;

/**
 * The KYC responder written the Spring for Apache Kafka way: a {@code @KafkaListener} whose
 * {@code @SendTo} (no topic) result Spring sends to the request's {@code kafka_replyTopic} /
 * {@code kafka_replyPartition}, echoing {@code kafka_correlationId} and, since spring-kafka 3.3
 * (GH-3395), the request's key. Plain Spring: {@code @Configuration} + {@code @EnableKafka} in an
 * {@link AnnotationConfigApplicationContext}, no Boot.
 *
 * <p>Environment: {@code KAFKA_BOOTSTRAP_SERVERS} (required), {@code RESPONDER_GROUP_ID}
 * (default {@code kyc-bench}), {@code RESPONDER_FETCH_WAIT_MS} (consumer
 * {@code fetch.max.wait.ms}, default Kafka's 500), {@code SPRING_CONCURRENCY} (consumers, default
 * 6: one per request partition).
 *
 * <p>Prints {@code spring responder ready} on stdout once the listener container runs and has
 * partitions. Stops when standard input closes (the benchmark's stop signal), on SIGTERM or
 * SIGINT: closes the context (the containers finish their records and commit), exits 0.
 *
 * <h2>At-least-once: the offset is committed only after the reply is acknowledged</h2>
 *
 * Out of the box, {@code @SendTo} does <em>not</em> give that (spring-kafka 4.1.2):
 * <ul>
 * <li>{@code MessagingMessageListenerAdapter.sendReplyForMessageSource} ends with
 * {@code replyTemplate.send(message)} and drops the returned future: the listener returns, the
 * container counts the record as processed and commits it, possibly before the broker has the
 * reply (or after the reply failed: {@code LoggingProducerListener} only logs).</li>
 * <li>Since 3.3.0 (GH-3528) {@code handleResult} runs even a synchronous result through
 * {@code CompletableFuture.completedFuture(result).whenComplete(...)} and discards the stage that
 * {@code whenComplete} returns, so an exception thrown while sending the reply never reaches the
 * container either: it is swallowed and the offset is committed.</li>
 * </ul>
 * What this responder configures, all with spring-kafka's own pieces:
 * <ol>
 * <li>The reply template ({@link AwaitingReplyTemplate}, the factory's
 * {@code setReplyTemplate}) waits in {@code send(Message)} for the send result, so the listener
 * thread returns to the container only once the broker has acknowledged the reply
 * ({@code acks=all}, idempotent producer). {@code linger.ms=0}: a waiting sender gains nothing
 * from lingering (Kafka 4's default is 5 ms, which would be added to every request). The price:
 * each consumer thread has one reply in flight at a time, so capacity is about
 * {@code SPRING_CONCURRENCY} / (produce round trip + processing).</li>
 * <li>{@code AckMode.BATCH} (the container's default; {@code enable.auto.commit=false}): the
 * container commits the offsets of a poll's records after the listener has returned for every one
 * of them, i.e. after every reply of the poll was acknowledged. {@code AckMode.RECORD} would be
 * just as safe with a synchronous send, but adds a commit round trip per request.</li>
 * <li>A failed reply must stop that commit. As the adapter swallows the exception (above), the
 * template also records the failure for the listener thread, and {@link ReplyFailureGuard} (a
 * spring-kafka {@code AbstractDelegatingMessageListenerAdapter} around Spring's own adapter,
 * installed by the factory's container customizer) rethrows it once the adapter returns. The
 * container then hands it to a {@link DefaultErrorHandler} that retries only that exception,
 * every second, without limit: it seeks back to the failed request (committing the ones before
 * it), which is redelivered and answered again. Any other listener failure is not retried (it
 * would fail again): the handler logs it and skips the request, as for a bad request.</li>
 * </ol>
 * Not chosen: Kafka transactions ({@code KafkaTransactionManager} on the container) would make
 * reply and offset atomic (exactly-once), a different contract with its own cost; the
 * "framework-exactly-once" contestant measures that.
 */
@Configuration
@EnableKafka
public class SpringResponder {

	static final String REQUEST_TOPIC = "WALLET-KYC-REQUEST";

	static final String ALLOWED_REPLY_PREFIX = "WALLET-KYC-RESPONSE";

	static final String LISTENER_ID = "kyc";

	private static final Logger LOG = LoggerFactory.getLogger(SpringResponder.class);

	static String env(String name, String otherwise) {
		String value = System.getenv(name);
		return value == null || value.isBlank() ? otherwise : value.trim();
	}

	static String bootstrap() {
		String bootstrap = System.getenv("KAFKA_BOOTSTRAP_SERVERS");
		if (bootstrap == null || bootstrap.isBlank()) {
			throw new IllegalStateException("KAFKA_BOOTSTRAP_SERVERS is not set");
		}
		return bootstrap.trim();
	}

	// ---------------------------------------------------------------- the KYC contract

	/** The request: {@code {"wallet_id":"wallet-00042","documents":["..."]}}. */
	record Query(@JsonProperty("wallet_id") String walletId, @JsonProperty("documents") List<String> documents) {
	}

	/** The reply; {@code documents} omitted when empty. */
	@JsonInclude(JsonInclude.Include.NON_EMPTY)
	record Score(@JsonProperty("wallet_id") String walletId, @JsonProperty("score") long score,
			@JsonProperty("documents") List<String> documents) {
	}

	/** FNV-1a 64 of the wallet id's UTF-8 bytes, modulo 101 (unsigned). */
	static long score(String walletId) {
		long h = 0xcbf29ce484222325L;
		for (byte b : walletId.getBytes(StandardCharsets.UTF_8)) {
			h ^= (b & 0xff);
			h *= 0x100000001b3L;
		}
		return Long.remainderUnsigned(h, 101);
	}

	/** The listener: Spring sends what it returns; {@code null} means no reply. */
	public static class KycListener {

		private final ObjectMapper json = new ObjectMapper()
			.configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

		@KafkaListener(id = LISTENER_ID, idIsGroup = false, topics = REQUEST_TOPIC,
				containerFactory = "kafkaListenerContainerFactory")
		@SendTo // no topic: the request's kafka_replyTopic (and kafka_replyPartition)
		public @Nullable String onRequest(ConsumerRecord<String, String> request) {
			String replyTopic = headerText(request, KafkaHeaders.REPLY_TOPIC);
			if (replyTopic == null || !replyTopic.startsWith(ALLOWED_REPLY_PREFIX)) {
				LOG.warn("request {}-{}@{}: reply topic {} not allowed, no reply", request.topic(),
						request.partition(), request.offset(), replyTopic);
				return null;
			}
			try {
				Query query = this.json.readValue(request.value(), Query.class);
				if (query.walletId() == null) {
					throw new IllegalArgumentException("no wallet_id");
				}
				List<String> documents = query.documents() == null ? List.of() : query.documents();
				return this.json.writeValueAsString(new Score(query.walletId(), score(query.walletId()), documents));
			}
			catch (IOException | IllegalArgumentException | NullPointerException e) {
				String why = e instanceof JsonProcessingException json ? json.getOriginalMessage() : e.toString();
				LOG.warn("request {}-{}@{}: bad request, no reply: {}", request.topic(), request.partition(),
						request.offset(), why);
				return null;
			}
		}

		private static @Nullable String headerText(ConsumerRecord<?, ?> record, String name) {
			Header header = record.headers().lastHeader(name);
			return header == null || header.value() == null ? null
					: new String(header.value(), StandardCharsets.UTF_8);
		}

	}

	// ---------------------------------------------------------------- at-least-once pieces

	/** A reply that the broker did not acknowledge: the request must be answered again. */
	static final class ReplyNotAcknowledgedException extends KafkaException {

		ReplyNotAcknowledgedException(Throwable cause) {
			super("reply not acknowledged by the broker", cause);
		}

	}

	/**
	 * The reply template: {@code send(Message)} (what {@code @SendTo} calls) returns only once
	 * the broker acknowledged the reply or the send failed for good (after the producer's own
	 * retries, {@code delivery.timeout.ms}). A failure is also left for {@link ReplyFailureGuard}
	 * on the same (listener) thread, because Spring's adapter swallows what is thrown here.
	 */
	static final class AwaitingReplyTemplate extends KafkaTemplate<String, String> {

		static final ThreadLocal<ReplyNotAcknowledgedException> FAILED = new ThreadLocal<>();

		AwaitingReplyTemplate(ProducerFactory<String, String> producers) {
			super(producers);
		}

		@Override
		public CompletableFuture<SendResult<String, String>> send(Message<?> message) {
			try {
				CompletableFuture<SendResult<String, String>> sent = super.send(message);
				sent.get();
				return sent;
			}
			catch (ExecutionException e) {
				throw failed(e.getCause() == null ? e : e.getCause());
			}
			catch (InterruptedException e) {
				Thread.currentThread().interrupt();
				throw failed(e);
			}
			catch (RuntimeException e) { // an immediate failure (no metadata, serialization, ...)
				throw failed(e);
			}
		}

		private static ReplyNotAcknowledgedException failed(Throwable cause) {
			ReplyNotAcknowledgedException ex = new ReplyNotAcknowledgedException(cause);
			FAILED.set(ex);
			return ex;
		}

	}

	/**
	 * Around Spring's listener adapter: after it returned (the reply sent, or not), rethrows a
	 * reply failure the template recorded, so the container does not commit the request.
	 */
	static final class ReplyFailureGuard extends AbstractDelegatingMessageListenerAdapter<MessageListener<String, String>>
			implements AcknowledgingConsumerAwareMessageListener<String, String> {

		ReplyFailureGuard(MessageListener<String, String> delegate) {
			super(delegate);
		}

		@Override
		public void onMessage(ConsumerRecord<String, String> record, @Nullable Acknowledgment acknowledgment,
				@Nullable Consumer<?, ?> consumer) {
			AwaitingReplyTemplate.FAILED.remove();
			switch (this.delegateType) {
				case ACKNOWLEDGING_CONSUMER_AWARE -> this.delegate.onMessage(record, acknowledgment, consumer);
				case ACKNOWLEDGING -> this.delegate.onMessage(record, acknowledgment);
				case CONSUMER_AWARE -> this.delegate.onMessage(record, consumer);
				case SIMPLE -> this.delegate.onMessage(record);
			}
			ReplyNotAcknowledgedException failed = AwaitingReplyTemplate.FAILED.get();
			if (failed != null) {
				AwaitingReplyTemplate.FAILED.remove();
				throw failed;
			}
		}

		@Override
		public void onMessage(ConsumerRecord<String, String> data) {
			onMessage(data, null, null);
		}

		@Override
		public void onMessage(ConsumerRecord<String, String> data, @Nullable Acknowledgment acknowledgment) {
			onMessage(data, acknowledgment, null);
		}

		@Override
		public void onMessage(ConsumerRecord<String, String> data, @Nullable Consumer<?, ?> consumer) {
			onMessage(data, null, consumer);
		}

	}

	// ---------------------------------------------------------------- beans

	@Bean
	public ProducerFactory<String, String> producerFactory() {
		Map<String, Object> props = new HashMap<>();
		props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
		props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
		props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
		props.put(ProducerConfig.ACKS_CONFIG, "all");
		props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
		props.put(ProducerConfig.LINGER_MS_CONFIG, 0);
		// One producer for all consumer threads (DefaultKafkaProducerFactory's default).
		return new DefaultKafkaProducerFactory<>(props);
	}

	@Bean
	public KafkaTemplate<String, String> kafkaTemplate(ProducerFactory<String, String> producerFactory) {
		return new AwaitingReplyTemplate(producerFactory);
	}

	@Bean
	public ConsumerFactory<String, String> consumerFactory() {
		Map<String, Object> props = new HashMap<>();
		props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
		props.put(ConsumerConfig.GROUP_ID_CONFIG, env("RESPONDER_GROUP_ID", "kyc-bench"));
		props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
		props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
		props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
		props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false); // the container commits
		String fetchWait = System.getenv("RESPONDER_FETCH_WAIT_MS");
		if (fetchWait != null && !fetchWait.isBlank()) {
			props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, Integer.parseInt(fetchWait.trim()));
		}
		return new DefaultKafkaConsumerFactory<>(props);
	}

	@Bean
	public ConcurrentKafkaListenerContainerFactory<String, String> kafkaListenerContainerFactory(
			ConsumerFactory<String, String> consumerFactory, KafkaTemplate<String, String> kafkaTemplate) {
		ConcurrentKafkaListenerContainerFactory<String, String> factory = new ConcurrentKafkaListenerContainerFactory<>();
		factory.setConsumerFactory(consumerFactory);
		factory.setConcurrency(Integer.parseInt(env("SPRING_CONCURRENCY", "6")));
		factory.setReplyTemplate(kafkaTemplate);
		factory.getContainerProperties().setAckMode(AckMode.BATCH);
		DefaultErrorHandler errors = new DefaultErrorHandler(new FixedBackOff(1000L, FixedBackOff.UNLIMITED_ATTEMPTS));
		errors.defaultFalse();
		errors.addRetryableExceptions(ReplyNotAcknowledgedException.class);
		factory.setCommonErrorHandler(errors);
		factory.setContainerCustomizer(container -> {
			@SuppressWarnings("unchecked")
			MessageListener<String, String> adapter =
					(MessageListener<String, String>) container.getContainerProperties().getMessageListener();
			container.setupMessageListener(new ReplyFailureGuard(adapter));
		});
		return factory;
	}

	@Bean
	public KycListener kycListener() {
		return new KycListener();
	}

	// ---------------------------------------------------------------- main

	public static void main(String[] args) throws InterruptedException {
		long started = System.nanoTime();
		try {
			bootstrap();
		}
		catch (IllegalStateException e) {
			System.err.println("spring responder: " + e.getMessage());
			System.exit(2);
		}
		CountDownLatch stop = new CountDownLatch(1);
		Thread stdin = new Thread(() -> {
			byte[] buffer = new byte[256];
			try (InputStream in = System.in) {
				while (in.read(buffer) >= 0) {
					// Only the end of input matters.
				}
			}
			catch (IOException e) {
				// A closed or broken stdin is a stop signal too.
			}
			stop.countDown();
		}, "stdin-eof");
		stdin.setDaemon(true);
		stdin.start();
		for (String name : new String[] { "TERM", "INT" }) {
			sun.misc.Signal.handle(new sun.misc.Signal(name), signal -> stop.countDown());
		}

		AnnotationConfigApplicationContext context = new AnnotationConfigApplicationContext(SpringResponder.class);
		long refreshed = System.nanoTime();
		KafkaListenerEndpointRegistry registry = context.getBean(KafkaListenerEndpointRegistry.class);
		MessageListenerContainer container = registry.getListenerContainer(LISTENER_ID);
		long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
		while (stop.getCount() > 0 && System.nanoTime() < deadline && (container == null || !container.isRunning()
				|| container.getAssignedPartitions() == null || container.getAssignedPartitions().isEmpty())) {
			Thread.sleep(20);
		}
		System.out.printf("spring responder ready (context started in %d ms, partitions assigned after %d ms)%n",
				(refreshed - started) / 1_000_000, (System.nanoTime() - started) / 1_000_000);
		System.out.flush();

		stop.await();
		// Stops the containers (each finishes its records and commits), closes the producer.
		context.close();
		System.out.flush();
		System.err.flush();
		System.exit(0);
	}

}
