package interop;

import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.apache.kafka.clients.consumer.ConsumerInterceptor;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Kafka client interceptors that only watch: the records the library's producer sent (with
 * the reply headers it wrote), and every record its reply consumer fetched, ours or not.
 */
public final class Spies {

	static final ConcurrentLinkedQueue<ProducerRecord<?, ?>> SENT = new ConcurrentLinkedQueue<>();

	static final ConcurrentLinkedQueue<ConsumerRecord<?, ?>> RECEIVED = new ConcurrentLinkedQueue<>();

	private Spies() {
	}

	public static final class Sent implements ProducerInterceptor<Object, Object> {

		@Override
		public ProducerRecord<Object, Object> onSend(ProducerRecord<Object, Object> record) {
			SENT.add(record);
			return record;
		}

		@Override
		public void onAcknowledgement(RecordMetadata metadata, Exception exception) {
		}

		@Override
		public void close() {
		}

		@Override
		public void configure(Map<String, ?> configs) {
		}

	}

	public static final class Received implements ConsumerInterceptor<Object, Object> {

		@Override
		public ConsumerRecords<Object, Object> onConsume(ConsumerRecords<Object, Object> records) {
			for (ConsumerRecord<Object, Object> r : records) {
				RECEIVED.add(r);
			}
			return records;
		}

		@Override
		public void onCommit(Map<TopicPartition, OffsetAndMetadata> offsets) {
		}

		@Override
		public void close() {
		}

		@Override
		public void configure(Map<String, ?> configs) {
		}

	}

}
