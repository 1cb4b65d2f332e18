//! The reply producer and its acknowledgements: librdkafka's producer (with its own
//! polling thread) whose delivery callback completes the [`Ack`] a record was sent
//! with, and wakes the request waiting for it.
//!
//! rust-rdkafka's `FutureProducer` does the same with a new channel and a box per
//! record. An `Ack` is reused instead: each worker thread keeps the ones whose record
//! was acknowledged (and that librdkafka no longer holds) for its next requests, so a
//! reply costs no allocation of its own here.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};

use super::topic_handles::TopicHandles;

/// The producer every reply, error reply and dead letter goes through.
pub(crate) type ReplyProducer = Arc<ThreadedProducer<Acks>>;

/// A record as built for the producer; its acknowledgement goes beside it.
pub(crate) use responder_ffi::topic_handle::Record;

/// How many acknowledged `Ack`s a thread keeps for reuse (beyond that, they are
/// freed): as many as requests a thread usually has in flight.
const KEPT_PER_THREAD: usize = 1024;

thread_local! {
    static KEPT: RefCell<Vec<Arc<Ack>>> = const { RefCell::new(Vec::new()) };
}

/// The producer's context: completes each record's [`Ack`].
pub(crate) struct Acks;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Arc<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Arc<Ack>) {
        let waker = ack.complete(match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        });
        // librdkafka's reference goes before the request wakes, so the request finds
        // the `Ack` its own and keeps it for reuse.
        drop(ack);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// One record's acknowledgement: the broker's verdict, once the delivery callback
/// had it, and the waker of the request awaiting it.
#[derive(Default)]
pub(crate) struct Ack {
    state: Mutex<AckState>,
}

#[derive(Default)]
struct AckState {
    verdict: Option<Result<(), KafkaError>>,
    waker: Option<Waker>,
}

impl Ack {
    fn state(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the broker's verdict; returns the waiting request's waker, to wake.
    fn complete(&self, verdict: Result<(), KafkaError>) -> Option<Waker> {
        let mut state = self.state();
        state.verdict = Some(verdict);
        state.waker.take()
    }
}

/// Hands `record` to the producer with an acknowledgement to await. On refusal
/// (the producer's queue is full, or the record is invalid) the record comes back
/// without it, to be sent again or given up.
#[allow(clippy::result_large_err)] // as librdkafka's own `send`: the record comes back
pub(crate) fn send<'a>(
    producer: &TopicHandles,
    record: Record<'a>,
) -> Result<Acknowledgement, (KafkaError, Record<'a>)> {
    let ack = KEPT
        .try_with(|kept| kept.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::new(Ack::default()));
    match producer.send(record, Arc::clone(&ack)) {
        Ok(()) => Ok(Acknowledgement { ack: Some(ack) }),
        Err((e, record, held)) => {
            // Refused: librdkafka did not keep its reference (it comes back here).
            drop(held);
            keep(ack);
            Err((e, record))
        }
    }
}

/// Keeps `ack` for reuse, cleared, when nothing else holds it (its delivery callback
/// ran and dropped librdkafka's reference). Otherwise it stays with librdkafka, without
/// the request's waker: a request given up (revoked, or the responder stopping) does
/// not stay in memory until the broker answers for its record.
fn keep(mut ack: Arc<Ack>) {
    let Some(only) = Arc::get_mut(&mut ack) else {
        ack.state().waker = None;
        return;
    };
    *only.state.get_mut().unwrap_or_else(PoisonError::into_inner) = AckState::default();
    // Not kept while the thread's locals are being destroyed.
    let _ = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < KEPT_PER_THREAD {
            kept.push(ack);
        }
    });
}

/// The broker's verdict on one record, awaited. Dropped before it (the request was
/// cancelled), the record is still delivered or not; nobody waits for it.
pub(crate) struct Acknowledgement {
    ack: Option<Arc<Ack>>,
}

impl Future for Acknowledgement {
    type Output = Result<(), KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(ack) = &self.ack else {
            panic!("acknowledgement polled after it completed");
        };
        let mut state = ack.state();
        if let Some(verdict) = state.verdict.take() {
            drop(state);
            if let Some(ack) = self.ack.take() {
                keep(ack);
            }
            return Poll::Ready(verdict);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Acknowledgement {
    fn drop(&mut self) {
        if let Some(ack) = self.ack.take() {
            keep(ack);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn kept() -> usize {
        KEPT.with_borrow(Vec::len)
    }

    /// An acknowledgement and the reference librdkafka would hold.
    fn sent() -> (Acknowledgement, Arc<Ack>) {
        let ack = Arc::new(Ack::default());
        let held = Arc::clone(&ack);
        (Acknowledgement { ack: Some(ack) }, held)
    }

    #[test]
    fn the_verdict_wakes_the_waiting_request_and_is_returned() {
        let (mut acked, held) = sent();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut acked).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut acked).poll(&mut cx).is_pending());
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        held.complete(Err(refused.clone()))
            .expect("the waiting request's waker")
            .wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            Pin::new(&mut acked).poll(&mut cx),
            Poll::Ready(Err(refused))
        );
    }

    #[test]
    fn an_ack_is_reused_only_once_librdkafka_let_go_of_it() {
        let before = kept();
        // Acknowledged, but the callback still holds its reference: not kept.
        let (mut acked, held) = sent();
        assert!(held.complete(Ok(())).is_none());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut acked).poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(kept(), before);
        drop(held);
        // Abandoned while librdkafka holds it: not kept either, and without the
        // abandoned request's waker.
        let (mut abandoned, held) = sent();
        assert!(Pin::new(&mut abandoned).poll(&mut cx).is_pending());
        drop(abandoned);
        assert_eq!(kept(), before);
        assert!(held.state().waker.is_none());
        drop(held);
        // Acknowledged after the callback let go: kept, and cleared.
        let (mut acked, held) = sent();
        let _ = held.complete(Ok(()));
        drop(held);
        assert_eq!(Pin::new(&mut acked).poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(kept(), before + 1);
        let reused = KEPT.with_borrow_mut(Vec::pop).expect("kept");
        let state = reused.state();
        assert!(state.verdict.is_none() && state.waker.is_none());
    }
}
