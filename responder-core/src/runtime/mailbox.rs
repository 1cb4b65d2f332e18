//! A mailbox: an unbounded many-to-one queue between the runtime's threads (the
//! consumer thread and the requests to the dispatcher, the dispatcher to each worker).
//!
//! It replaces tokio's unbounded channel on the per-request path. That channel
//! allocates a block per 32 messages (reused at most a few times, and freed by the
//! other side, so glibc's per-thread caches miss: ~350 instructions per request for
//! the blocks alone under callgrind) and takes two atomic operations per message on
//! its counter. Here senders push under a lock into one ring buffer, and the receiver
//! swaps that buffer with its own empty one: one lock per message, one per batch, and
//! no allocation once the buffers have grown to the largest batch.
//!
//! The receiver is woken only when a message lands in an empty queue: a batch costs
//! one wake-up, not one per message. The receiver registers its waker before it looks
//! at the queue, so a message pushed after its look wakes it. Like tokio's channels,
//! waiting for a message spends the task's budget: a receiver kept busy gives its
//! thread back to the runtime now and then.

use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// A new mailbox: its sending side (cloned for each sender) and its receiving side.
pub(crate) fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        closed: AtomicBool::new(false),
        receiver: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    /// The receiver is gone (or the mailbox was closed): nothing is accepted any more.
    /// Set under `queue`'s lock, and read under it by senders, so no message is queued
    /// after the queue was emptied on closing.
    closed: AtomicBool,
    receiver: AtomicWaker,
    /// Senders alive; at zero, the receiver ends once it has taken every message.
    senders: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Nothing panics while holding the lock (a push, a swap).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses messages from now on, and drops those queued.
    fn close(&self) {
        let left = {
            let mut queue = self.lock();
            self.closed.store(true, Release);
            std::mem::take(&mut *queue)
        };
        // Dropped outside the lock: a message's drop may send to this mailbox.
        drop(left);
    }
}

/// The sending side of a mailbox.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value`; gives it back when the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        let was_empty = {
            let mut queue = self.shared.lock();
            if self.shared.closed.load(Acquire) {
                return Err(value);
            }
            let was_empty = queue.is_empty();
            queue.push_back(value);
            was_empty
        };
        // A queue that was not empty has woken its receiver already (and the
        // receiver empties it only after it registered to be woken again).
        if was_empty {
            self.shared.receiver.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Acquire)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, AcqRel);
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, AcqRel) == 1 {
            self.shared.receiver.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The receiving side of a mailbox.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The last batch taken from the queue, not yet received.
    taken: VecDeque<T>,
}

// Messages are never pinned in the mailbox (as in tokio's channels).
impl<T> Unpin for Receiver<T> {}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and every message received.
    /// Cancel-safe: a message is taken only when it is returned.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message, or `Pending` (woken when one comes); `Ready(None)` once
    /// every sender is gone and every message received.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let polled = self.poll_take(cx);
        if matches!(polled, Poll::Ready(Some(_))) {
            coop.made_progress();
        }
        polled
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(value) = self.try_recv() {
            return Poll::Ready(Some(value));
        }
        self.shared.receiver.register(cx.waker());
        // Looked at again after registering: what came since wakes it.
        if let Some(value) = self.try_recv() {
            return Poll::Ready(Some(value));
        }
        if self.shared.senders.load(Acquire) == 0 {
            // The last sender's messages were queued before it went.
            return Poll::Ready(self.try_recv());
        }
        Poll::Pending
    }

    /// A handle that closes this mailbox as dropping the receiver would, for whoever
    /// must close it before the receiver is dropped.
    pub(crate) fn closer(&self) -> Closer<T> {
        Closer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        if self.taken.is_empty() {
            // Swapped, not copied: the queue gets the empty buffer (and its capacity).
            std::mem::swap(&mut *self.shared.lock(), &mut self.taken);
        }
        self.taken.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Closes a mailbox (see [`Receiver::closer`]).
pub(crate) struct Closer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Closer<T> {
    /// Refuses messages from now on (senders see the mailbox closed), and drops those
    /// queued.
    pub(crate) fn close(&self) {
        self.shared.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_end_is_seen_after_the_last() {
        let (tx, mut rx) = mailbox();
        let tx2 = tx.clone();
        for i in 0..5 {
            tx.send(i).expect("open");
        }
        assert_eq!(rx.recv().await, Some(0));
        tx2.send(5).expect("open");
        drop(tx);
        drop(tx2);
        let mut rest = Vec::new();
        while let Some(v) = rx.recv().await {
            rest.push(v);
        }
        assert_eq!(rest, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_gone_receiver_refuses_messages_and_drops_what_was_queued() {
        let (tx, rx) = mailbox();
        let queued = Arc::new(());
        tx.send(Arc::clone(&queued)).expect("open");
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(Arc::strong_count(&queued), 1, "queued message dropped");
        let refused = tx.send(Arc::clone(&queued)).expect_err("closed");
        assert!(Arc::ptr_eq(&refused, &queued));
    }

    /// A closer closes the mailbox while its receiver lives: senders see it closed, and
    /// what was queued is dropped (a revocation's answer channel among them, so its
    /// waiter stops waiting).
    #[test]
    fn a_closer_closes_before_the_receiver_goes() {
        let (tx, mut rx) = mailbox();
        let queued = Arc::new(());
        tx.send(Arc::clone(&queued)).expect("open");
        rx.closer().close();
        assert!(tx.is_closed());
        assert_eq!(Arc::strong_count(&queued), 1, "queued message dropped");
        assert!(tx.send(Arc::clone(&queued)).is_err());
        assert!(rx.try_recv().is_none());
    }

    /// Senders on other threads, a message sent as the receiver sleeps, or as it may be
    /// taking the previous batch: every message arrives, in each sender's order, and
    /// none waits for a wake-up that never comes (a lost one leaves the receiver
    /// asleep and the test timing out). The senders stay alive until the end: only
    /// their messages' wake-ups can wake the receiver, not their drop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wake_up_is_lost_between_threads() {
        const SENDERS: u64 = 3;
        const EACH: u64 = 50_000;
        const ONE_BY_ONE: u64 = 200;
        let (tx, mut rx) = mailbox::<u64>();
        let received = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (tx, received) = (tx.clone(), Arc::clone(&received));
                std::thread::spawn(move || {
                    // First the first sender alone, one message at a time, each sent
                    // into an empty queue once the receiver is asleep; then all at once.
                    let alone = ONE_BY_ONE as usize;
                    while s > 0 && received.load(Acquire) < alone {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for i in 0..EACH {
                        if s == 0 && i < ONE_BY_ONE {
                            while received.load(Acquire) < i as usize {
                                std::thread::yield_now();
                            }
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        tx.send(s * EACH + i).expect("open");
                    }
                    tx
                })
            })
            .collect();
        let got = tokio::time::timeout(Duration::from_secs(60), async {
            let (mut n, mut sum) = (0u64, 0u64);
            let mut last = vec![None::<u64>; SENDERS as usize];
            while n < SENDERS * EACH {
                let v = rx.recv().await.expect("senders alive");
                let s = (v / EACH) as usize;
                assert!(last[s].is_none_or(|l| l < v), "out of order");
                last[s] = Some(v);
                n += 1;
                sum += v;
                received.fetch_add(1, AcqRel);
            }
            (n, sum)
        })
        .await
        .expect("a wake-up was lost");
        let senders: Vec<Sender<u64>> = threads
            .into_iter()
            .map(|t| t.join().expect("sender"))
            .collect();
        let total = SENDERS * EACH;
        assert_eq!(got, (total, total * (total - 1) / 2));
        drop((tx, senders));
        assert_eq!(rx.recv().await, None, "ends once every sender is gone");
    }
}
