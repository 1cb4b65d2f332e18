//! Exactly-once replies (opt-in, [`exactly_once`](crate::ResponderBuilder::exactly_once)):
//! replies are produced inside a Kafka transaction, and the request offsets they
//! answer are committed in that same transaction.
//!
//! One transaction per commit interval, on the reply producer (its `transactional.id`
//! is the one the builder was given):
//!
//! 1. A request's reply (or error reply, or dead letter) enters the open transaction
//!    under a read lease of the [`TransactionGate`], held until the request is settled
//!    and reported to the dispatcher.
//! 2. At each commit interval, the commit takes the gate's write lease: new replies
//!    wait (the lock is fair), replies in flight finish. Every reply in the
//!    transaction then belongs to a settled request, and every settled request's report
//!    is in the dispatcher's queue.
//! 3. The dispatcher reads the reports and hands over the ledger's watermarks, with the
//!    settled-above-watermark ranges in the commit metadata, exactly as a plain commit
//!    would send them.
//! 4. The offsets are sent to the transaction (`send_offsets_to_transaction`, with the
//!    consumer's group metadata: a member fenced by a rebalance cannot commit), the
//!    transaction is committed and the next one begun, and the gate opens.
//!
//! A requester that reads with `isolation.level=read_committed` (librdkafka's default;
//! a Java requester sets it on its reply consumer) sees a reply only once its
//! request's offset is committed: a crash before the commit leaves neither, and the next owner answers the
//! request again, once.
//!
//! Anything that would make the transaction commit a reply without its offset (a
//! reply the broker refused, a request abandoned after its reply was produced) marks
//! it *tainted*: it is aborted instead, and the responder stops with an error (its
//! requests are answered again by the next owner, or by itself after a restart).
//! Revocations and shutdown commit a transaction of their own before the partitions
//! go, in place of the plain commit.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use tokio::sync::{OwnedRwLockReadGuard, RwLock, mpsc, oneshot};

use super::acks::ReplyProducer;

/// How long starting the transactional producer (`init_transactions`, which also
/// aborts what an earlier instance with the same `transactional.id` left open) may
/// take.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The gate between replies entering the open transaction and its commit.
#[derive(Debug, Default)]
pub(crate) struct TransactionGate {
    lock: Arc<RwLock<()>>,
    tainted: AtomicBool,
}

/// A request's place in the open transaction: held from its first produce until it is
/// settled (then dropped after its report is sent).
#[derive(Debug)]
pub(crate) struct Lease {
    gate: Arc<TransactionGate>,
    _guard: OwnedRwLockReadGuard<()>,
}

impl Lease {
    /// The transaction this lease is in.
    pub(crate) fn gate(&self) -> &TransactionGate {
        &self.gate
    }
}

impl TransactionGate {
    /// Waits until the transaction takes new records (not during a commit).
    pub(crate) async fn enter(self: &Arc<Self>) -> Lease {
        Lease {
            gate: Arc::clone(self),
            _guard: Arc::clone(&self.lock).read_owned().await,
        }
    }

    /// The open transaction must not commit: it holds a reply whose request will not
    /// be committed with it.
    pub(crate) fn taint(&self, why: &str) {
        if !self.tainted.swap(true, SeqCst) {
            tracing::error!(
                reason = why,
                "the open transaction cannot commit: it is aborted and the responder stops"
            );
        }
    }

    fn tainted(&self) -> bool {
        self.tainted.load(SeqCst)
    }
}

/// What the dispatcher hands a commit once the gate is closed: the offsets to send,
/// and the group metadata to send them with.
pub(crate) struct Snapshot {
    pub(crate) offsets: TopicPartitionList,
    pub(crate) group: Option<ConsumerGroupMetadata>,
}

/// Who waits for the next commit.
pub(crate) enum Waiter {
    /// The consumer thread's revocation callback (answered with an empty list: the
    /// offsets went in the transaction).
    Revocation(oneshot::Sender<TopicPartitionList>),
    /// The consumer thread's final commit at shutdown (likewise).
    Final(std::sync::mpsc::Sender<TopicPartitionList>),
}

impl Waiter {
    fn release(self) {
        match self {
            Waiter::Revocation(tx) => drop(tx.send(TopicPartitionList::new())),
            Waiter::Final(tx) => drop(tx.send(TopicPartitionList::new())),
        }
    }
}

/// The dispatcher's side of the transactions: when to commit, who waits, and the
/// offsets of revoked partitions that go into the next commit.
pub(crate) struct Transactions {
    gate: Arc<TransactionGate>,
    producer: ReplyProducer,
    /// Bound on closing the gate (replies in flight finishing) and on each broker call.
    timeout: Duration,
    /// A commit is wanted (the interval passed, a revocation or the shutdown).
    wanted: bool,
    running: bool,
    failed: bool,
    /// Commits of revoked partitions (and the final ones), for the next transaction.
    pending: Vec<super::ledger::Commit>,
    /// Waiting for the next transaction to end.
    waiters: Vec<Waiter>,
    /// The waiters of the running transaction.
    riding: Vec<Waiter>,
    /// The group metadata, kept for the final commit (the dispatcher has given up its
    /// consumer by then).
    pub(crate) final_group: Option<ConsumerGroupMetadata>,
    events_tx: mpsc::UnboundedSender<TxnEvent>,
    /// What the running commit asks of, or tells, the dispatcher.
    pub(crate) events: mpsc::UnboundedReceiver<TxnEvent>,
}

/// What a commit asks of, or tells, the dispatcher.
pub(crate) enum TxnEvent {
    /// The gate is closed: send the offsets.
    Snapshot(oneshot::Sender<Snapshot>),
    /// The commit ended (`Err`: the transaction was aborted or its state is unknown).
    Ended(Result<(), String>),
}

impl Transactions {
    pub(crate) fn new(
        gate: Arc<TransactionGate>,
        producer: ReplyProducer,
        timeout: Duration,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Transactions {
            gate,
            producer,
            timeout,
            wanted: false,
            running: false,
            failed: false,
            pending: Vec::new(),
            waiters: Vec::new(),
            riding: Vec::new(),
            final_group: None,
            events_tx,
            events,
        }
    }

    /// Asks for a commit (started at once, or after the one running).
    pub(crate) fn want(&mut self) {
        self.wanted = true;
        self.start();
    }

    /// A commit that must include `commits` and release `waiter` when it ends.
    pub(crate) fn commit_with(&mut self, commits: Vec<super::ledger::Commit>, waiter: Waiter) {
        if self.failed {
            // Nothing more is committed: the next owner answers those requests again.
            waiter.release();
            return;
        }
        self.pending.extend(commits);
        self.waiters.push(waiter);
        self.want();
    }

    /// The offsets revoked partitions and the shutdown left for the next commit.
    pub(crate) fn take_pending(&mut self) -> Vec<super::ledger::Commit> {
        std::mem::take(&mut self.pending)
    }

    fn start(&mut self) {
        if self.running || !self.wanted || self.failed {
            return;
        }
        self.wanted = false;
        self.running = true;
        self.riding = std::mem::take(&mut self.waiters);
        let (gate, producer, timeout) =
            (Arc::clone(&self.gate), self.producer.clone(), self.timeout);
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            // Always reported: a revocation callback or the final commit waits for it.
            let result = AssertUnwindSafe(commit(&gate, producer, timeout, &events))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(format!(
                        "the transaction's commit panicked: {}",
                        super::request::panic_message(&*panic)
                    ))
                });
            let _ = events.send(TxnEvent::Ended(result));
        });
    }

    /// A commit ended: releases its waiters and starts the next one if wanted.
    /// `Err` when it failed (the responder must stop: nothing more is committed).
    pub(crate) fn on_ended(&mut self, result: Result<(), String>) -> Result<(), String> {
        self.running = false;
        for w in self.riding.drain(..) {
            w.release();
        }
        if let Err(why) = result {
            self.failed = true;
            for w in self.waiters.drain(..) {
                w.release();
            }
            return Err(why);
        }
        self.start();
        Ok(())
    }

    /// The bound on closing the gate and on each broker call of a commit.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// One commit: closes the gate, gets the offsets, and commits (or aborts) on a
/// blocking thread; the next transaction is begun before the gate opens.
async fn commit(
    gate: &TransactionGate,
    producer: ReplyProducer,
    timeout: Duration,
    events: &mpsc::UnboundedSender<TxnEvent>,
) -> Result<(), String> {
    let closed = tokio::time::timeout(timeout, Arc::clone(&gate.lock).write_owned()).await;
    let Ok(_closed) = closed else {
        // Replies in flight did not finish in time (the broker is away): what they
        // produced cannot be committed without their offsets.
        gate.taint("replies in flight did not finish before the transaction's commit");
        let why = format!(
            "the transaction could not close in {} ms",
            timeout.as_millis()
        );
        return Err(blocking(producer, move |p| abort(p, timeout, why)).await);
    };
    let (tx, rx) = oneshot::channel();
    let snapshot = match events.send(TxnEvent::Snapshot(tx)) {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    let Some(snapshot) = snapshot else {
        return Err(blocking(producer, move |p| {
            abort(p, timeout, "the dispatcher is gone")
        })
        .await);
    };
    if gate.tainted() {
        let why = "the transaction held a reply whose request is not committed with it";
        return Err(blocking(producer, move |p| abort(p, timeout, why)).await);
    }
    blocking(producer, move |p| commit_blocking(p, snapshot, timeout)).await
}

/// Sends the offsets, commits, and begins the next transaction; retries what
/// librdkafka calls retriable until `timeout`; aborts what must be aborted.
fn commit_blocking(p: &ReplyProducer, snapshot: Snapshot, timeout: Duration) -> Result<(), String> {
    let until = Instant::now() + timeout;
    let left = || until.saturating_duration_since(Instant::now());
    let step = |what: &str, call: &dyn Fn() -> Result<(), KafkaError>| -> Result<(), String> {
        loop {
            match call() {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && !left().is_zero() => {
                    tracing::debug!(error = %e, "{what}: retrying");
                    std::thread::sleep(Duration::from_millis(100).min(left()));
                }
                // Abortable, out of retries, or fatal (then the abort fails at once).
                Err(e) => {
                    return Err(abort(
                        p,
                        left().max(Duration::from_secs(1)),
                        format!("{what}: {e}"),
                    ));
                }
            }
        }
    };
    if snapshot.offsets.count() > 0 {
        let Some(group) = &snapshot.group else {
            let why = "no consumer group metadata to commit offsets with";
            return Err(abort(p, left(), why));
        };
        step("sending offsets to the transaction", &|| {
            p.send_offsets_to_transaction(&snapshot.offsets, group, left())
        })?;
    }
    step("committing the transaction", &|| {
        p.commit_transaction(left())
    })?;
    tracing::debug!(offsets = ?snapshot.offsets, "transaction committed");
    p.begin_transaction()
        .map_err(|e| format!("beginning the next transaction: {e}"))
}

/// Aborts the open transaction, so that it does not hold back `read_committed` readers
/// of its partitions until the broker times it out, and says why the commit failed,
/// with the abort's own result.
fn abort(p: &ReplyProducer, timeout: Duration, why: impl std::fmt::Display) -> String {
    let aborted = p.abort_transaction(timeout);
    format!("{why} (aborted: {aborted:?})")
}

/// Starts the transactional producer: `init_transactions` (fencing an earlier
/// instance with the same `transactional.id` and aborting what it left open), then the
/// first transaction.
pub(crate) async fn init(producer: ReplyProducer) -> Result<(), KafkaError> {
    blocking(producer, |p| {
        p.init_transactions(INIT_TIMEOUT)?;
        p.begin_transaction()
    })
    .await
}

/// Runs a blocking producer call off the async threads.
async fn blocking<T: Send + 'static>(
    producer: ReplyProducer,
    call: impl FnOnce(&ReplyProducer) -> T + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || call(&producer))
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}
