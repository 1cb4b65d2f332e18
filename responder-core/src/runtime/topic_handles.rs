//! The reply producer's handles for the topics it produces to: librdkafka's own handle
//! per topic, taken once (see `responder_ffi::topic_handle`), not a new C string and a
//! lookup of the topic by name for every reply.
//!
//! Reply topics are those the policy admits and the broker has, so they are few; the
//! handles are bounded all the same: past [`MAX_HANDLES`] topics, one is let go for
//! each new one (taken again if a reply needs it).

use std::sync::{Arc, PoisonError, RwLock};

use foldhash::HashMap;
use responder_ffi::topic_handle::{Refused, TopicHandle};

use super::acks::{Ack, Acks, Record, ReplyProducer};

/// The most topic handles kept.
const MAX_HANDLES: usize = 1024;

/// The reply producer, with a handle for each topic it produced to.
pub(crate) struct TopicHandles {
    producer: ReplyProducer,
    handles: RwLock<HashMap<Box<str>, Arc<TopicHandle<Acks>>>>,
}

impl TopicHandles {
    pub(crate) fn new(producer: ReplyProducer) -> Self {
        TopicHandles {
            producer,
            handles: RwLock::default(),
        }
    }

    /// Hands `record` to the producer through its topic's handle, with `ack` for its
    /// delivery callback; a refused record comes back with its `ack` (see
    /// `TopicHandle::send`).
    #[allow(clippy::result_large_err)] // as librdkafka's own `send`: the record comes back
    pub(crate) fn send<'a>(
        &self,
        record: Record<'a>,
        ack: Arc<Ack>,
    ) -> Result<(), Refused<'a, Arc<Ack>>> {
        {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handle) = handles.get(record.topic) {
                return handle.send(record, ack);
            }
        }
        let handle = match TopicHandle::new(&self.producer, record.topic) {
            Ok(handle) => Arc::new(handle),
            Err(e) => return Err((e, record, ack)),
        };
        let handle = {
            let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
            if handles.len() >= MAX_HANDLES
                && !handles.contains_key(record.topic)
                && let Some(any) = handles.keys().next().cloned()
            {
                handles.remove(&any);
            }
            Arc::clone(handles.entry(record.topic.into()).or_insert(handle))
        };
        // Sent without the lock: the other replies go on meanwhile.
        handle.send(record, ack)
    }

    /// How many handles are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.handles.read().map_or(0, |h| h.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::ClientConfig;
    use rdkafka::producer::BaseRecord;
    use responder_ffi::mock_cluster::MockCluster;

    use super::*;

    #[test]
    fn a_handle_per_topic_bounded() {
        let broker = MockCluster::start(1).expect("broker");
        let producer: ReplyProducer = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", broker.bootstrap_servers())
                .create_with_context(Acks)
                .expect("producer"),
        );
        let handles = TopicHandles::new(Arc::clone(&producer));
        let send = |topic: &str| {
            let record = BaseRecord::to(topic).payload(&b"r"[..]);
            handles
                .send(record, Arc::default())
                .map_err(|(e, ..)| e)
                .expect("queued");
        };
        send("a");
        send("a");
        send("b");
        assert_eq!(handles.len(), 2);
        for i in 0..MAX_HANDLES {
            send(&format!("t{i}"));
        }
        // Full at `a`, `b` and the first 1022 more: one let go for each of the last
        // two.
        assert_eq!(handles.len(), MAX_HANDLES);
        drop(handles);
        assert_eq!(Arc::strong_count(&producer), 1, "every handle let go");
    }
}
