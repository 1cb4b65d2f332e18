//! The workers that run requests: a few long-lived tasks, two per thread of the async
//! runtime, each running many requests' futures at once in slots it reuses.
//!
//! A task per request costs two allocations (tokio's task cell, aligned to a cache
//! line, and the boxed request future) and their frees: about 1.8 k instructions per
//! request under callgrind, for a request whose whole cost is some 38 k. A worker
//! allocates a slot once and reuses it, request after request.
//!
//! Each slot has its own waker: waking it queues the slot, and the worker polls only
//! queued slots, at most [`POLLS_PER_TURN`] per turn before it yields to the runtime.
//! A request goes to the worker with the fewest requests in flight; tokio moves whole
//! workers between threads. Unlike tasks, requests cannot leave their worker: those
//! in a worker stuck in a handler that blocks its thread wait for it. Handlers must
//! not block (`spawn_blocking` is for that), as with any async runtime.
//!
//! A request that panics is caught at its slot; its future is dropped while the panic
//! unwinds (as tokio drops a panicked task's), so its ticket sees the panic and
//! settles it (see `ticket.rs`). The worker and its other requests go on.
//!
//! A worker ends once the dispatcher has dropped its sender and its last request is
//! over.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

use super::cancel::{self, Poller};
use super::mailbox::{self, Receiver, Sender};

/// Slots a worker polls in one turn before it yields to the runtime (its timers, its
/// I/O and other tasks), as tokio's own scheduler yields every 61 tasks.
const POLLS_PER_TURN: usize = 64;

/// Workers per thread of the runtime: with one, a request could only wait for its
/// worker; two let tokio move one of them to a thread that is free.
const WORKERS_PER_THREAD: usize = 2;

/// The workers, as the dispatcher sees them: where to send what to run.
pub(crate) struct Workers<J> {
    workers: Vec<Handle<J>>,
    /// Runs a job as a task of its own: for a worker that is gone (it cannot panic
    /// outside its slots, but if it did, its jobs would still run).
    spawn: Box<dyn Fn(J) + Send + Sync>,
}

struct Handle<J> {
    jobs: Sender<J>,
    /// Its requests not over yet.
    load: Arc<AtomicUsize>,
}

/// A free slot, for a job's future: `build(job, slot)` puts the future in it.
pub(crate) type SlotFor<'a, Fut> = Pin<&'a mut Option<Fut>>;

/// `build` for a job's future made by `make` (the tests' way: the runtime's builds in
/// place, see [`Workers::start`]).
#[cfg(test)]
pub(crate) fn made_by<J, Fut>(make: impl Fn(J) -> Fut) -> impl Fn(J, SlotFor<'_, Fut>) {
    move |job, mut slot| slot.set(Some(make(job)))
}

impl<J: Send + 'static> Workers<J> {
    /// Spawns [`WORKERS_PER_THREAD`] workers per thread of the current runtime, each
    /// running the futures `build(job, slot)` puts into its slots for the jobs it is
    /// given.
    ///
    /// The future is built into the slot, not returned: a request's future is some
    /// 2 KB, and one returned was built on the stack and then copied into its slot
    /// (~290 instructions a request). `build` writes it where it stays.
    pub(crate) fn start<F, Fut>(build: F) -> Self
    where
        F: Fn(J, SlotFor<'_, Fut>) + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let threads = tokio::runtime::Handle::current().metrics().num_workers();
        Self::start_n(threads.max(1) * WORKERS_PER_THREAD, build)
    }

    /// Spawns `count` workers.
    pub(crate) fn start_n<F, Fut>(count: usize, build: F) -> Self
    where
        F: Fn(J, SlotFor<'_, Fut>) + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let build = Arc::new(build);
        let workers = (0..count.max(1))
            .map(|_| {
                let (jobs, rx) = mailbox::mailbox();
                let load = Arc::new(AtomicUsize::new(0));
                tokio::spawn(Worker::new(rx, Arc::clone(&build), Arc::clone(&load)));
                Handle { jobs, load }
            })
            .collect();
        Workers {
            workers,
            spawn: Box::new(move |job| {
                let mut future = Box::pin(None);
                build(job, future.as_mut());
                drop(tokio::spawn(async move {
                    if let Some(f) = future.as_mut().as_pin_mut() {
                        f.await;
                    }
                }));
            }),
        }
    }

    /// Runs `job` on the worker with the fewest requests.
    pub(crate) fn submit(&mut self, job: J) {
        let Some(worker) = self.workers.iter().min_by_key(|w| w.load.load(Relaxed)) else {
            return (self.spawn)(job);
        };
        worker.load.fetch_add(1, Relaxed);
        if let Err(job) = worker.jobs.send(job) {
            // Only a worker that panicked outside its slots is gone (or the runtime
            // is shutting down, and then nothing runs).
            tracing::error!("a request worker is gone; running its requests as tasks");
            self.workers.retain(|w| !w.jobs.is_closed());
            (self.spawn)(job);
        }
    }
}

/// What a slot's waker and the worker share.
#[derive(Default)]
struct Shared {
    /// Slots woken since the worker last looked.
    woken: Mutex<Vec<usize>>,
    /// The worker's own task.
    worker: AtomicWaker,
}

/// A cancellation signal fired: the worker polls all its requests (see `cancel.rs`).
impl Poller for Shared {
    fn wake(&self) {
        self.worker.wake();
    }
}

/// A slot's waker: queues the slot and wakes the worker.
struct SlotWaker {
    index: usize,
    /// Whether the slot is queued already (one entry per wake-up, however many wakes).
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, AcqRel) {
            self.shared
                .woken
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.index);
            self.shared.worker.wake();
        }
    }
}

struct Slot<Fut> {
    /// The request's future; `None` when the slot is free. Boxed once, reused.
    future: Pin<Box<Option<Fut>>>,
    wake: Arc<SlotWaker>,
    waker: Waker,
}

/// One worker: a task polling the futures in its slots.
struct Worker<J, F, Fut> {
    jobs: Receiver<J>,
    /// Whether the dispatcher may still send jobs.
    open: bool,
    /// Builds a job's future into a slot.
    build: Arc<F>,
    slots: Vec<Slot<Fut>>,
    free: Vec<usize>,
    /// Slots to poll now (taken from `shared.woken`, plus those just filled).
    due: Vec<usize>,
    running: usize,
    /// `running`, as `Workers::submit` sees it (counted up there, down here).
    load: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    /// Cancellation signals fired in the process when all requests were last polled
    /// for them (see `cancel.rs`).
    seen_fires: u64,
}

impl<J, F, Fut> Worker<J, F, Fut>
where
    F: Fn(J, SlotFor<'_, Fut>),
    Fut: Future<Output = ()>,
{
    fn new(jobs: Receiver<J>, build: Arc<F>, load: Arc<AtomicUsize>) -> Self {
        let shared = Arc::<Shared>::default();
        let poller: Weak<dyn Poller> = Arc::downgrade(&shared) as Weak<Shared>;
        cancel::add_poller(poller);
        Worker {
            jobs,
            open: true,
            build,
            slots: Vec::new(),
            free: Vec::new(),
            due: Vec::new(),
            running: 0,
            load,
            shared,
            seen_fires: cancel::fires(),
        }
    }

    /// Puts `job`'s future into a free slot (a new one if none is free) and marks the
    /// slot due.
    fn start(&mut self, job: J) {
        let index = self.free.pop().unwrap_or_else(|| {
            let wake = Arc::new(SlotWaker {
                index: self.slots.len(),
                queued: AtomicBool::new(false),
                shared: Arc::clone(&self.shared),
            });
            self.slots.push(Slot {
                future: Box::pin(None),
                waker: Waker::from(Arc::clone(&wake)),
                wake,
            });
            self.slots.len() - 1
        });
        let slot = self.slots[index].future.as_mut();
        let build = &self.build;
        // Building the future runs code of its own (the request's span): a panic there
        // drops the job as it unwinds, as a panic in its first poll would.
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| build(job, slot)));
        match built {
            Ok(()) if self.slots[index].future.is_some() => {
                self.running += 1;
                self.due.push(index);
            }
            // Nothing built (not the runtime's way), or a panic building it (after the
            // future was stored, it is dropped now: a free slot is empty).
            Ok(()) | Err(_) => {
                self.slots[index].future.set(None);
                self.free.push(index);
                self.load.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Polls the slot at `index`, freeing it when its future is over.
    fn poll_slot(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        // Cleared first: a wake while it is polled queues it again.
        slot.wake.queued.swap(false, AcqRel);
        let mut cx = Context::from_waker(&slot.waker);
        let future = slot.future.as_mut();
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut guard = DropOnUnwind(future);
            // `None`: woken after it was over.
            let future = guard.0.as_mut().as_pin_mut()?;
            Some(cancel::polled_by_poller(|| future.poll(&mut cx)))
        }));
        let over = match polled {
            Ok(None | Some(Poll::Pending)) => false,
            Ok(Some(Poll::Ready(()))) | Err(_) => true,
        };
        if over {
            slot.future.set(None);
            self.free.push(index);
            self.running -= 1;
            self.load.fetch_sub(1, Relaxed);
        }
    }
}

/// Drops a slot's future if a panic unwinds through its poll, before the panic is
/// caught: the future's drop then sees `std::thread::panicking()` (a request's ticket
/// settles on it), as when tokio drops a panicked task.
struct DropOnUnwind<'a, Fut>(Pin<&'a mut Option<Fut>>);

impl<Fut> Drop for DropOnUnwind<'_, Fut> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set(None);
        }
    }
}

impl<J, F, Fut> Future for Worker<J, F, Fut>
where
    F: Fn(J, SlotFor<'_, Fut>),
    Fut: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Every field is `Unpin` (the futures are boxed in their slots).
        let this = self.get_mut();
        this.shared.worker.register(cx.waker());
        // Read after registering: a fire after this read wakes this task again.
        let fires = cancel::fires();
        if fires != this.seen_fires {
            this.seen_fires = fires;
            // Queued as a wake would queue them: a slot already queued (woken, in
            // `shared.woken`) is not added twice.
            for (index, slot) in this.slots.iter().enumerate() {
                if slot.future.is_some() && !slot.wake.queued.swap(true, AcqRel) {
                    this.due.push(index);
                }
            }
        }
        while this.open {
            match this.jobs.poll_recv(cx) {
                Poll::Ready(Some(job)) => this.start(job),
                Poll::Ready(None) => this.open = false,
                Poll::Pending => break,
            }
        }
        let mut due = std::mem::take(&mut this.due);
        due.append(
            &mut this
                .shared
                .woken
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let now = due.len().min(POLLS_PER_TURN);
        for &index in &due[..now] {
            this.poll_slot(index);
        }
        // The rest next turn: yield to the runtime, and come back at once.
        due.drain(..now);
        this.due = due;
        if !this.due.is_empty() {
            cx.waker().wake_by_ref();
        }
        if !this.open && this.running == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;

    /// Many requests, spread over workers, each waiting on a timer (woken from the
    /// runtime's timer, not by the worker): every one runs to its end, and the
    /// workers end once their senders are gone and their requests are over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_job_runs_to_its_end() {
        let done = Arc::new(AtomicUsize::new(0));
        let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut workers = {
            let done = Arc::clone(&done);
            Workers::start_n(
                3,
                made_by(move |ms: u64| {
                    let done = Arc::clone(&done);
                    let ended = ended_tx.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(ms % 7)).await;
                        tokio::task::yield_now().await;
                        done.fetch_add(1, SeqCst);
                        drop(ended);
                    }
                }),
            )
        };
        for i in 0..500 {
            workers.submit(i);
        }
        drop(workers);
        // Every clone of `ended_tx` is gone once every job and worker is.
        tokio::time::timeout(Duration::from_secs(10), ended_rx.recv())
            .await
            .expect("workers end");
        assert_eq!(done.load(SeqCst), 500);
    }

    /// Notes whether it is dropped while a panic unwinds.
    struct SeesUnwind(Arc<AtomicUsize>);

    impl Drop for SeesUnwind {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.fetch_add(1, SeqCst);
            }
        }
    }

    /// A request that panics ends alone: its whole state is dropped as the panic
    /// unwinds (with `std::thread::panicking()` true, which its ticket relies on: a
    /// request's ticket is captured by its future, as `guard` here), whether it panics
    /// as its future is built or when it is polled; the worker goes on with the others,
    /// reusing the slot.
    #[tokio::test]
    async fn a_panicking_request_ends_alone() {
        let unwound = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut workers = {
            let (unwound, done) = (Arc::clone(&unwound), Arc::clone(&done));
            Workers::start_n(
                1,
                made_by(move |n: u32| {
                    let guard = SeesUnwind(Arc::clone(&unwound));
                    assert!(n != 5, "a bug building request {n}");
                    let done = Arc::clone(&done);
                    async move {
                        tokio::task::yield_now().await;
                        assert!(n != 3, "a bug in request {n}");
                        done.fetch_add(1, SeqCst);
                        drop(guard);
                    }
                }),
            )
        };
        for n in 0..8 {
            workers.submit(n);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while done.load(SeqCst) < 6 {
            assert!(tokio::time::Instant::now() < deadline, "requests stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(unwound.load(SeqCst), 2);
        // The worker still runs requests, and counts none of the panicked ones.
        workers.submit(100);
        while done.load(SeqCst) < 7 {
            assert!(tokio::time::Instant::now() < deadline, "worker stopped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(workers.workers[0].load.load(SeqCst), 0);
    }

    /// More slots woken at once than one turn polls: the rest are polled on the next
    /// turns, none forgotten.
    #[tokio::test]
    async fn slots_beyond_one_turn_are_polled_later() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        let n = POLLS_PER_TURN * 5 + 3;
        let mut workers = {
            let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
            Workers::start_n(
                1,
                made_by(move |(): ()| {
                    let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
                    async move {
                        gate.notified().await;
                        done.fetch_add(1, SeqCst);
                    }
                }),
            )
        };
        for _ in 0..n {
            workers.submit(());
        }
        // Every request waits on the gate before it is opened for all at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while done.load(SeqCst) < n {
            assert!(tokio::time::Instant::now() < deadline, "slots forgotten");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Requests waiting on nothing but their cancellation signal end when it fires
    /// from another thread: their guards registered no waiter, the fire wakes the
    /// workers, and they poll all their requests again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fired_signal_ends_the_requests_it_guards() {
        use crate::runtime::cancel::Cancel;
        let cancel = Cancel::default();
        let ended = Arc::new(AtomicUsize::new(0));
        let mut workers = {
            let (cancel, ended) = (cancel.clone(), Arc::clone(&ended));
            Workers::start_n(
                2,
                made_by(move |(): ()| {
                    let (cancel, ended) = (cancel.clone(), Arc::clone(&ended));
                    async move {
                        let work = std::pin::pin!(std::future::pending::<()>());
                        assert_eq!(cancel.guard(work).await, None);
                        ended.fetch_add(1, SeqCst);
                    }
                }),
            )
        };
        for _ in 0..10 {
            workers.submit(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ended.load(SeqCst), 0);
        std::thread::spawn(move || cancel.fire())
            .join()
            .expect("fired");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ended.load(SeqCst) < 10 {
            assert!(tokio::time::Instant::now() < deadline, "requests not woken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Each request goes to the worker with the fewest in flight.
    #[tokio::test]
    async fn requests_go_to_the_least_loaded_worker() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut workers = {
            let gate = Arc::clone(&gate);
            Workers::start_n(
                3,
                made_by(move |waits: bool| {
                    let gate = Arc::clone(&gate);
                    async move {
                        if waits {
                            gate.notified().await;
                        }
                    }
                }),
            )
        };
        let loads = |w: &Workers<bool>| -> Vec<usize> {
            w.workers.iter().map(|w| w.load.load(SeqCst)).collect()
        };
        workers.submit(true);
        workers.submit(true);
        workers.submit(false);
        assert_eq!(loads(&workers), [1, 1, 1]);
        // The third is over at once: its worker is the least loaded again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while loads(&workers) != [1, 1, 0] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                loads(&workers)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Round-robin would give [3, 2, 1].
        for _ in 0..4 {
            workers.submit(true);
        }
        assert_eq!(loads(&workers), [2, 2, 2]);
        gate.notify_waiters();
    }

    /// A slot woken from another thread, long after it was last polled, is polled
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_woken_from_another_thread_goes_on() {
        let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
        let done = Arc::new(AtomicUsize::new(0));
        let mut workers = {
            let done = Arc::clone(&done);
            Workers::start_n(
                1,
                made_by(move |(): ()| {
                    let (wake_tx, wake_rx) = tokio::sync::oneshot::channel();
                    tx.send(wake_tx).expect("test thread");
                    let done = Arc::clone(&done);
                    async move {
                        wake_rx.await.expect("woken");
                        done.fetch_add(1, SeqCst);
                    }
                }),
            )
        };
        workers.submit(());
        let waker = tokio::task::spawn_blocking(move || {
            let wake = rx.recv().expect("job started");
            std::thread::sleep(Duration::from_millis(50));
            wake.send(()).expect("request waits");
        });
        waker.await.expect("thread");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while done.load(SeqCst) < 1 {
            assert!(tokio::time::Instant::now() < deadline, "not polled again");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
