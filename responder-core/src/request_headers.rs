//! A request's headers, read from the record once: the reply address, the deadline and
//! the trace context are all looked up here.

use crate::trace_context::{TRACEPARENT_HEADER, TRACESTATE_HEADER};

/// One header: its key and value (`None`: a null value).
type Entry<'h> = (&'h str, Option<&'h [u8]>);

/// A header's value when present: `None` for a null value.
type Present<'h> = Option<&'h [u8]>;

/// How many headers are kept without allocating (a Spring request has four or five).
const INLINE: usize = 8;

/// A request's headers in record order, borrowed from the record.
///
/// ```
/// use responder_core::address::{AddressReader, RequestHeaders};
/// use responder_core::HeaderConvention;
///
/// let headers: RequestHeaders<'_> = [
///     ("kafka_replyTopic", Some(&b"replies"[..])),
///     ("kafka_correlationId", Some(&b"c-1"[..])),
/// ]
/// .into_iter()
/// .collect();
/// assert_eq!(headers.last("kafka_replyTopic"), Some(Some(&b"replies"[..])));
/// let address = AddressReader::new([HeaderConvention::spring()]).read(&headers)?;
/// assert_eq!(address.topic, "replies");
/// # Ok::<_, responder_core::Unanswerable>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequestHeaders<'h> {
    inline: [Entry<'h>; INLINE],
    len: usize,
    more: Vec<Entry<'h>>,
    /// Where the last `traceparent` and `tracestate` are: noted as the headers are
    /// read, so the trace context costs no pass of its own.
    traceparent: Option<usize>,
    tracestate: Option<usize>,
}

impl Default for RequestHeaders<'_> {
    fn default() -> Self {
        RequestHeaders {
            inline: [("", None); INLINE],
            len: 0,
            more: Vec::new(),
            traceparent: None,
            tracestate: None,
        }
    }
}

impl<'h> RequestHeaders<'h> {
    /// Reads a record's headers (keys as bytes). A header whose key is not UTF-8 is
    /// left out (no convention names one).
    pub(crate) fn of(headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>) -> Self {
        let mut read = RequestHeaders::default();
        read.read(headers);
        read
    }

    /// Reads a record's headers after those it has, as [`RequestHeaders::of`] does.
    /// Into headers the caller holds: the per-request path reads into its own, rather
    /// than have 320 bytes copied out of `of` (~85 instructions a request).
    pub(crate) fn read(&mut self, headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>) {
        for (key, value) in headers {
            match responder_ffi::utf8::from_utf8(key) {
                Ok(key) => self.push(key, value),
                Err(_) => tracing::debug!(
                    key = %String::from_utf8_lossy(&key[..key.len().min(32)]),
                    "header key that is not UTF-8 left out"
                ),
            }
        }
    }

    /// Adds a header after the others.
    pub fn push(&mut self, key: &'h str, value: Option<&'h [u8]>) {
        let at = self.len();
        match key {
            TRACEPARENT_HEADER => self.traceparent = Some(at),
            TRACESTATE_HEADER => self.tracestate = Some(at),
            _ => {}
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = (key, value);
                self.len += 1;
            }
            None => self.more.push((key, value)),
        }
    }

    /// The headers, in record order.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'h>> + '_ {
        self.inline[..self.len].iter().chain(&self.more).copied()
    }

    /// The header at `index` (in record order).
    fn at(&self, index: usize) -> Option<Entry<'h>> {
        match index.checked_sub(INLINE) {
            None => self.inline[..self.len].get(index).copied(),
            Some(beyond) => self.more.get(beyond).copied(),
        }
    }

    /// The values of the last `traceparent` and `tracestate`, if any (as
    /// [`last`](Self::last) reads them, without a pass over the headers).
    #[inline]
    pub(crate) fn trace_headers(&self) -> (Option<Present<'h>>, Option<Present<'h>>) {
        let value = |at: Option<usize>| at.and_then(|i| self.at(i)).map(|(_, v)| v);
        (value(self.traceparent), value(self.tracestate))
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.len + self.more.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of the last header named `key` (as Kafka's `lastHeader`): `None` when
    /// there is none, `Some(None)` for a null value.
    pub fn last(&self, key: &str) -> Option<Option<&'h [u8]>> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }
}

impl<'h> IntoIterator for RequestHeaders<'h> {
    type Item = Entry<'h>;
    type IntoIter = std::iter::Chain<
        std::iter::Take<std::array::IntoIter<Entry<'h>, INLINE>>,
        std::vec::IntoIter<Entry<'h>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.inline.into_iter().take(self.len).chain(self.more)
    }
}

impl<'h> FromIterator<Entry<'h>> for RequestHeaders<'h> {
    fn from_iter<I: IntoIterator<Item = Entry<'h>>>(iter: I) -> Self {
        let mut headers = RequestHeaders::default();
        for (key, value) in iter {
            headers.push(key, value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_beyond_the_inline_slots() {
        let keys: Vec<String> = (0..INLINE + 3).map(|i| format!("h{i}")).collect();
        let headers: RequestHeaders<'_> = keys
            .iter()
            .map(|k| (k.as_str(), Some(k.as_bytes())))
            .collect();
        assert_eq!(headers.len(), INLINE + 3);
        let read: Vec<&str> = headers.iter().map(|(k, _)| k).collect();
        assert_eq!(read, keys.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(headers.last("h9"), Some(Some(&b"h9"[..])));
        assert_eq!(headers.last("nope"), None);
        assert!(RequestHeaders::default().is_empty());
    }

    /// The trace headers noted while reading are the last of each, as `last` finds
    /// them, inline or beyond.
    #[test]
    fn notes_the_last_trace_headers() {
        let mut keys: Vec<String> = (0..INLINE + 4).map(|i| format!("h{i}")).collect();
        keys[1] = "traceparent".into();
        keys[2] = "tracestate".into();
        keys[INLINE + 2] = "traceparent".into();
        let headers: RequestHeaders<'_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), (i != 2).then_some(k.as_bytes())))
            .collect();
        assert_eq!(
            headers.trace_headers(),
            (headers.last("traceparent"), headers.last("tracestate"))
        );
        assert_eq!(headers.trace_headers().1, Some(None));
        assert_eq!(RequestHeaders::default().trace_headers(), (None, None));
    }
}
