//! A request's lifecycle, as the dispatcher's ledger sees it: queued, handling,
//! delivering (its reply is with the producer, awaiting the broker's acknowledgement or
//! a retry), then over. The ticket reports each step back once, and holds the
//! request's in-flight slot until it is over.

use super::ledger::Place;
use super::mailbox::Sender;
use super::permits::Permit;
use super::transaction::Lease;

/// What a request reports back to the dispatcher.
#[derive(Debug)]
pub(crate) enum Report {
    /// Handled: its reply (if any) is with the producer. Its lane may run the next
    /// request; it still holds its in-flight slot.
    Handled(Place),
    /// Over: settled (its offset may be committed) or abandoned (it may not); and
    /// whether its records went into the open transaction (exactly-once replies).
    Finished(Place, bool, bool),
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Received, waiting for its lane or a handling slot.
    Queued,
    /// In the handler (or being checked before it).
    Handling,
    /// Its reply is with the producer.
    Delivering,
    /// Reported finished.
    Over,
}

/// A request's link back to the dispatcher. Dropped before it is over (a cancelled
/// task), it reports the request abandoned: its offset stays uncommitted; dropped by a
/// panic in its task, it reports it settled (see `Drop`). Dropped
/// while still queued (a revocation or shutdown cleared the queue), it reports
/// nothing: the request never started.
#[derive(Debug)]
pub(crate) struct Ticket {
    reports: Sender<Report>,
    place: Place,
    stage: Stage,
    /// The in-flight slot, held until the request is over: a reply awaiting the
    /// broker's acknowledgement still holds it, so the bound covers every request the
    /// responder holds.
    permit: Option<Permit>,
    /// With exactly-once replies: its place in the open transaction, from its first
    /// produce until its report is sent.
    lease: Option<Lease>,
}

impl Ticket {
    pub(crate) fn new(reports: Sender<Report>, place: Place, permit: Permit) -> Self {
        Ticket {
            reports,
            place,
            stage: Stage::Queued,
            permit: Some(permit),
            lease: None,
        }
    }

    /// The request starts (the ledger said so).
    pub(crate) fn start(&mut self) {
        debug_assert_eq!(self.stage, Stage::Queued);
        self.stage = Stage::Handling;
    }

    /// The request is handled: its reply is with the producer. Reported once.
    pub(crate) fn handled(&mut self) {
        if self.stage == Stage::Handling {
            self.stage = Stage::Delivering;
            let _ = self.reports.send(Report::Handled(self.place.clone()));
        }
    }

    /// Whether the request's records go into the open transaction already.
    pub(crate) fn in_transaction(&self) -> bool {
        self.lease.is_some()
    }

    /// The request's records go into the open transaction (see `runtime::transaction`).
    pub(crate) fn enlist(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    /// The request's outcome is final: its offset may be committed.
    pub(crate) fn settle(&mut self) {
        self.finish(true);
    }

    fn finish(&mut self, settled: bool) {
        if self.stage == Stage::Over {
            return;
        }
        self.handled();
        if self.stage == Stage::Delivering {
            let _ = self.reports.send(Report::Finished(
                self.place.clone(),
                settled,
                self.lease.is_some(),
            ));
        }
        self.stage = Stage::Over;
        // After the report: the dispatcher never sees more requests than slots, and a
        // transaction's commit sees the reports of every reply in it.
        drop(self.permit.take());
        if let Some(lease) = self.lease.take()
            && !settled
        {
            lease
                .gate()
                .taint("a request was abandoned after its reply entered the transaction");
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Dropped by a panic in the request's task (a bug in the responder: a
        // handler's panics are caught and answered), the request would stay
        // uncommitted for good: every owner of the partition would meet the same
        // record, panic again, and never commit past it. It is settled instead,
        // loudly, so one record cannot block its partition.
        let panicked =
            std::thread::panicking() && matches!(self.stage, Stage::Handling | Stage::Delivering);
        if panicked {
            tracing::error!(
                topic = %self.place.topic,
                partition = self.place.partition,
                offset = self.place.offset,
                "the request's task panicked: its offset is committed without a reply, \
                 so that it cannot block its partition"
            );
        }
        self.finish(panicked);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::runtime::mailbox;
    use crate::runtime::permits::Permits;

    fn ticket(permits: &Permits) -> (Ticket, mailbox::Receiver<Report>) {
        let (tx, rx) = mailbox::mailbox();
        let place = Place {
            topic: Arc::from("t"),
            partition: 0,
            book: 0,
            epoch: 1,
            offset: 5,
            lane: None,
        };
        let permit = permits.acquire_timeout(Duration::ZERO).expect("slot");
        (Ticket::new(tx, place, permit), rx)
    }

    #[test]
    fn each_step_is_reported_once_and_the_slot_is_freed_at_the_end() {
        let permits = Permits::new(1, usize::MAX);
        let (mut t, mut rx) = ticket(&permits);
        t.start();
        t.handled();
        t.handled();
        assert!(matches!(rx.try_recv(), Some(Report::Handled(_))));
        assert!(rx.try_recv().is_none());
        assert!(
            permits.acquire_timeout(Duration::ZERO).is_none(),
            "slot held while delivering"
        );
        t.settle();
        assert!(matches!(
            rx.try_recv(),
            Some(Report::Finished(_, true, false))
        ));
        assert!(permits.acquire_timeout(Duration::ZERO).is_some());
    }

    #[test]
    fn dropped_by_a_panic_it_is_settled_so_it_cannot_block_its_partition() {
        let permits = Permits::new(1, usize::MAX);
        let (mut t, mut rx) = ticket(&permits);
        t.start();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = t;
            panic!("a bug in the request's task");
        }));
        assert!(unwound.is_err());
        assert!(matches!(rx.try_recv(), Some(Report::Handled(_))));
        assert!(matches!(
            rx.try_recv(),
            Some(Report::Finished(_, true, false))
        ));
        assert!(permits.acquire_timeout(Duration::ZERO).is_some());
    }

    #[test]
    fn dropped_running_it_is_abandoned_and_dropped_queued_it_reports_nothing() {
        let permits = Permits::new(2, usize::MAX);
        let (mut running, mut rx) = ticket(&permits);
        running.start();
        drop(running);
        assert!(matches!(rx.try_recv(), Some(Report::Handled(_))));
        assert!(matches!(
            rx.try_recv(),
            Some(Report::Finished(_, false, false))
        ));
        let (queued, mut rx) = ticket(&permits);
        drop(queued);
        assert!(rx.try_recv().is_none());
        assert!(permits.acquire_timeout(Duration::ZERO).is_some());
    }
}
