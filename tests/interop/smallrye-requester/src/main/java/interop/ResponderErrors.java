package interop;

import java.nio.charset.StandardCharsets;

import jakarta.enterprise.context.ApplicationScoped;

import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

import io.smallrye.common.annotation.Identifier;
import io.smallrye.reactive.messaging.kafka.KafkaRecord;
import io.smallrye.reactive.messaging.kafka.reply.ReplyFailureHandler;

/**
 * The requester's {@link ReplyFailureHandler} (configured as
 * {@code reply.failure.handler=responder-errors}): a reply carrying the responder's
 * {@code responder-error-code} fails the request's Uni with {@link ResponderErrorException},
 * its message taken from SmallRye's conventional {@code REPLY_ERROR} header.
 */
@ApplicationScoped
@Identifier("responder-errors")
public class ResponderErrors implements ReplyFailureHandler {

	/** What an error reply turns into. */
	public static final class ResponderErrorException extends RuntimeException {

		final String code;

		final String replyError;

		final String key;

		final int partition;

		ResponderErrorException(String code, String replyError, String key, int partition) {
			super(code + ": " + replyError);
			this.code = code;
			this.replyError = replyError;
			this.key = key;
			this.partition = partition;
		}

	}

	static String header(Headers headers, String name) {
		Header h = headers.lastHeader(name);
		return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
	}

	@Override
	public Throwable handleReply(KafkaRecord<?, ?> replyRecord) {
		String code = header(replyRecord.getHeaders(), "responder-error-code");
		String replyError = header(replyRecord.getHeaders(), "REPLY_ERROR");
		if (code == null && replyError == null) {
			return null; // a normal reply
		}
		Object key = replyRecord.getKey();
		return new ResponderErrorException(code, replyError, key == null ? null : key.toString(),
				replyRecord.getPartition());
	}

}
