package interop;

import java.util.UUID;

import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.annotations.QuarkusMain;

/**
 * Entry point: takes the addresses from the command line and hands them to Quarkus as system
 * properties (its configuration), then runs {@link SmallRyeRequester}.
 *
 * <p>usage: java -jar smallrye-requester.jar BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N
 */
@QuarkusMain
public final class Main {

	public static void main(String... args) {
		if (args.length != 5) {
			System.err.println("usage: smallrye-requester BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC REPLY_PARTITION N");
			System.exit(2);
		}
		Integer.parseInt(args[3]);
		Integer.parseInt(args[4]);
		System.setProperty("kafka.bootstrap.servers", args[0]);
		System.setProperty("mp.messaging.outgoing.kyc.topic", args[1]);
		System.setProperty("mp.messaging.outgoing.kyc.reply.topic", args[2]);
		// With reply.partition the library assigns its reply consumer to exactly that partition
		// and writes REPLY_PARTITION (4-byte big-endian) into every request.
		System.setProperty("mp.messaging.outgoing.kyc.reply.partition", args[3]);
		System.setProperty("mp.messaging.outgoing.kyc.reply.group.id", "interop-smallrye-" + UUID.randomUUID());
		Quarkus.run(SmallRyeRequester.class, args);
	}

}
