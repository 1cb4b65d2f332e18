//! The live write-access check (KIP-430 DescribeTopics with authorized operations).
//! The embedded broker and Tansu report no operations: the configured fallback decides.
//! Apache Kafka reports them (without an authorizer, every operation is allowed): the
//! check then answers without the fallback. (What the check does with each set of
//! operations is unit-tested beside the FFI wrapper.)

mod common;

use std::time::Duration;

use common::{Fixture, ProbeLog, ProbeReq, eventually};
use kafka_responder::testkit::end_offset;
use kafka_responder::{HeaderConvention, UnknownWriteAccess};

#[tokio::test]
#[cfg_attr(
    kafka_broker,
    ignore = "Apache Kafka reports authorized operations: the fallback is never used there"
)]
async fn unreported_operations_fall_back_to_the_configured_choice() {
    let fx = Fixture::new(1, 1).await;
    let requester = fx.requester(HeaderConvention::spring(), 0).await;

    // Fail closed: nothing is written, the request is committed as unanswerable.
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| c.check_write_access(UnknownWriteAccess::Refuse))
    });
    let (pending, (_, offset)) = requester
        .send(&fx.requests, None, None, &ProbeReq::id(1).bytes())
        .await
        .expect("sent");
    eventually(Duration::from_secs(20), || {
        running.metrics().unanswerable == 1
    })
    .await;
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.unanswerable, m.replied), (1, 0));
    assert_eq!(
        end_offset(fx.bootstrap(), &fx.replies, 0)
            .await
            .expect("end"),
        0
    );
    assert_eq!(fx.committed(&fx.requests).await, Some(offset + 1));
    drop(pending);

    // Trust the policy: answered.
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| c.check_write_access(UnknownWriteAccess::Allow))
    });
    requester
        .request(&fx.requests, None, &ProbeReq::id(2).bytes())
        .await
        .expect("answered");
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.unanswerable, m.replied), (0, 1));
}

/// On Apache Kafka the operations are reported: a responder that refuses unreported
/// ones still answers, so the reported `WRITE` was read and used.
#[tokio::test]
#[cfg_attr(
    not(kafka_broker),
    ignore = "needs a broker that reports authorized operations (Apache Kafka)"
)]
async fn reported_write_access_is_used_instead_of_the_fallback() {
    let fx = Fixture::new(1, 1).await;
    let requester = fx.requester(HeaderConvention::spring(), 0).await;
    let running = fx.serve(ProbeLog::new(), |b| {
        b.reply_checks(|c| c.check_write_access(UnknownWriteAccess::Refuse))
    });
    requester
        .request(&fx.requests, None, &ProbeReq::id(1).bytes())
        .await
        .expect("answered: the broker reported WRITE on the reply topic");
    let m = running.shutdown().await.expect("shutdown");
    assert_eq!((m.unanswerable, m.replied), (0, 1));
}
