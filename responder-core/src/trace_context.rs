//! W3C trace context (`traceparent` / `tracestate`) carried from a request to its reply.
//!
//! A request that arrives with a valid `traceparent` is handled as a child of that
//! span: the responder's own span gets a new span id in the same trace, the request's
//! events carry the trace id, and the reply (or error reply) carries a `traceparent`
//! naming the responder's span, with the request's `tracestate` passed on unchanged.
//! The requester's tracing then shows one trace from request to reply. A malformed
//! `traceparent` is ignored (logged at DEBUG), never an error: the request is answered
//! as if it had none. A request without one gets a reply without one.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::request_headers::RequestHeaders;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The header carrying the trace id, parent span id and flags.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The header carrying vendor-specific trace state, passed on unchanged.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// A span's place in a trace: what a `traceparent` header says.
///
/// Kept as the header's value (validated; version `00`, the flags version 00 defines),
/// so a reply's `traceparent` is this value with a new span id written into it; the
/// ids are decoded to bytes only when asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// `00-<trace id>-<span id>-<flags>`, lowercase hex.
    value: [u8; 55],
}

/// Where the parts of a `traceparent` value are.
const TRACE_ID: std::ops::Range<usize> = 3..35;
const SPAN_ID: std::ops::Range<usize> = 36..52;
const FLAGS: std::ops::Range<usize> = 53..55;

impl TraceParent {
    /// Reads a `traceparent` header value (version 00, or a later version read as
    /// version 00 says). `None` when it is malformed: wrong length or separators,
    /// hex that is not lowercase, an all-zero trace or span id, version `ff`.
    #[inline]
    pub fn parse(value: &[u8]) -> Option<Self> {
        // Bytes, not text: a value of the right length may hold multi-byte characters.
        let (head, rest) = value.split_first_chunk::<55>()?;
        let version = hex::<1>(&head[0..2])?[0];
        // Version 00 is exactly 55 bytes; a later one may add fields after a dash.
        if version == 0xff
            || (version == 0 && !rest.is_empty())
            || (!rest.is_empty() && rest[0] != b'-')
        {
            return None;
        }
        if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
            return None;
        }
        let flags = hex::<1>(&head[FLAGS])?[0];
        let trace_id: &[u8; 32] = head[TRACE_ID].try_into().ok()?;
        let span_id: &[u8; 16] = head[SPAN_ID].try_into().ok()?;
        if !is_nonzero_lower_hex(trace_id) || !is_nonzero_lower_hex(span_id) {
            return None;
        }
        let mut value = *head;
        value[..2].copy_from_slice(b"00");
        // Only the flags version 00 defines are passed on (sampled, random).
        if flags & !KNOWN_FLAGS != 0 {
            write_hex(&[flags & KNOWN_FLAGS], &mut value[FLAGS]);
        }
        Some(TraceParent { value })
    }

    /// A child of this span: the same trace and flags, a new span id.
    pub fn child(&self) -> Self {
        self.with_span_id(new_span_id())
    }

    /// The same trace and flags under another span id.
    #[inline]
    pub(crate) fn with_span_id(&self, span_id: [u8; 8]) -> Self {
        let mut value = self.value;
        value[SPAN_ID].copy_from_slice(&hex16(u64::from_be_bytes(span_id)));
        TraceParent { value }
    }

    /// The same span under other flags (those version 00 defines).
    #[cfg(feature = "otel")]
    pub(crate) fn with_flags(&self, flags: u8) -> Self {
        let mut value = self.value;
        write_hex(&[flags & KNOWN_FLAGS], &mut value[FLAGS]);
        TraceParent { value }
    }

    /// The trace id (16 bytes).
    pub fn trace_id(&self) -> [u8; 16] {
        hex(&self.value[TRACE_ID]).unwrap_or_default()
    }

    /// The span id (8 bytes).
    pub fn span_id(&self) -> [u8; 8] {
        hex(&self.value[SPAN_ID]).unwrap_or_default()
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        hex::<1>(&self.value[FLAGS]).unwrap_or_default()[0]
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        String::from_utf8_lossy(&self.value[TRACE_ID]).into_owned()
    }

    /// The `traceparent` header value, `00-<trace id>-<span id>-<flags>`, written
    /// without allocating (a reply carries it).
    pub fn header_value(&self) -> [u8; 55] {
        self.value
    }

    /// The header value, borrowed.
    pub(crate) fn as_bytes(&self) -> &[u8; 55] {
        &self.value
    }
}

/// `00-<trace id>-<span id>-<flags>`: the `traceparent` header value.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.value))
    }
}

/// `TraceParent("00-<trace id>-<span id>-<flags>")`.
impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = std::str::from_utf8(&self.value).unwrap_or_default();
        f.debug_tuple("TraceParent").field(&value).finish()
    }
}

/// A request's trace context: the responder's span (a child of the requester's, in
/// its trace), the requester's span id, and the trace state to pass on.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    /// The responder's span: the reply's `traceparent`.
    span: TraceParent,
    /// The requester's span id, as hex, and its flags: the rest of its span is the
    /// responder's.
    parent_span_id: [u8; 16],
    parent_flags: [u8; 2],
    pub(crate) state: Option<Vec<u8>>,
}

impl TraceContext {
    /// Reads the `traceparent` and `tracestate` of a request's headers (the last of
    /// each when repeated, as Kafka's `Headers::lastHeader` does).
    #[inline]
    pub(crate) fn read(headers: &RequestHeaders<'_>) -> Option<Self> {
        let (parent, state) = headers.trace_headers();
        let raw = parent?.unwrap_or_default();
        let Some(parent) = TraceParent::parse(raw) else {
            malformed(raw);
            return None;
        };
        // W3C bounds `tracestate` at 512 characters: a longer one is not passed on
        // (it would only make the reply larger, up to past the broker's limit).
        let state = state
            .flatten()
            .filter(|s| s.len() <= MAX_TRACESTATE_LEN)
            .map(<[u8]>::to_vec);
        let mut parent_span_id = [0; 16];
        parent_span_id.copy_from_slice(&parent.value[SPAN_ID]);
        let mut parent_flags = [0; 2];
        parent_flags.copy_from_slice(&parent.value[FLAGS]);
        Some(TraceContext {
            span: parent.child(),
            parent_span_id,
            parent_flags,
            state,
        })
    }

    /// The requester's span, the parent of the responder's (what the OpenTelemetry
    /// export names as the exported span's parent).
    #[cfg(any(feature = "otel", test))]
    pub(crate) fn parent(&self) -> TraceParent {
        let mut value = self.span.value;
        value[SPAN_ID].copy_from_slice(&self.parent_span_id);
        value[FLAGS].copy_from_slice(&self.parent_flags);
        TraceParent { value }
    }

    /// The responder's span: the reply's `traceparent`.
    pub(crate) fn span(&self) -> &TraceParent {
        &self.span
    }
}

/// The spans as their header values, the trace state as text (a request context's
/// `Debug` shows it).
impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("TraceContext")
            .field("span", &self.span)
            .field("parent_span_id", &text(&self.parent_span_id))
            .field("parent_flags", &text(&self.parent_flags))
            .field("state", &self.state.as_deref().map(text))
            .finish()
    }
}

/// Logs a malformed `traceparent` (at DEBUG: it is ignored, not an error). Out of line:
/// the request path reads valid ones.
#[cold]
#[inline(never)]
fn malformed(raw: &[u8]) {
    tracing::debug!(
        traceparent = %String::from_utf8_lossy(&raw[..raw.len().min(64)]),
        "malformed traceparent ignored"
    );
}

impl TraceContext {
    /// Makes `span` (the request's span) this context's: records the trace id on it
    /// and, with the `otel` feature and an OpenTelemetry layer that enables the span,
    /// makes the exported span the requester's span's child and names it in the reply.
    /// Call before the span is first entered.
    #[inline]
    pub(crate) fn adopt(&mut self, span: &tracing::Span) {
        // A disabled span (the usual case: it is at DEBUG) records nothing, so the
        // trace id is not even formatted.
        if span.is_disabled() {
            return;
        }
        self.adopt_enabled(span);
    }

    #[inline(never)]
    fn adopt_enabled(&mut self, span: &tracing::Span) {
        span.record(
            "trace_id",
            tracing::field::display(self.span.trace_id_hex()),
        );
        #[cfg(feature = "otel")]
        if let Some(exported) = crate::otel::adopt(span, self) {
            self.span = exported;
        }
    }
}

/// The longest `tracestate` passed on (W3C: at most 512 characters).
const MAX_TRACESTATE_LEN: usize = 512;

/// The trace flags version 00 defines: sampled (bit 0) and random (bit 1).
const KNOWN_FLAGS: u8 = 0b11;

/// Lowercase hex digit values; `INVALID` for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};
const INVALID: u8 = 0xff;

/// Reads `2 * N` lowercase hex digits (a table lookup per digit: a request carries 48).
fn hex<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        // An invalid digit has its high bit set, which no valid one has.
        invalid |= hi | lo;
        *o = hi << 4 | lo;
    }
    (invalid & 0x80 == 0).then_some(out)
}

/// Whether every byte is a lowercase hex digit and not all are `0` (W3C refuses an
/// all-zero id), eight bytes at a time and without a branch per word (a request's
/// `traceparent` carries 48 digits): for a byte `x` below 0x80, `x + (0x80 - c)` has
/// its high bit set exactly when `x >= c`, and no addition carries into the next byte.
/// (A byte of 0x80 or more may carry, but it makes the word invalid by itself.)
fn is_nonzero_lower_hex<const N: usize>(digits: &[u8; N]) -> bool {
    const { assert!(N.is_multiple_of(8), "whole words only") };
    const fn each(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    const HIGH: u64 = each(0x80);
    let (mut invalid, mut nonzero) = (0u64, 0u64);
    for word in digits.as_chunks::<8>().0 {
        let w = u64::from_ne_bytes(*word);
        let at_least = |c: u8| w.wrapping_add(each(0x80 - c));
        let digit = at_least(b'0') & !at_least(b'9' + 1);
        let letter = at_least(b'a') & !at_least(b'f' + 1);
        invalid |= (w | !(digit | letter)) & HIGH;
        nonzero |= w ^ each(b'0');
    }
    invalid == 0 && nonzero != 0
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = DIGITS[usize::from(b >> 4)];
        o[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `n` as 16 lowercase hex digits, most significant first, eight at a time: each
/// nibble spread to a byte of its own, then `'0'` added, and `'a' - '0' - 10` more
/// where the nibble is 10 or more (`n + 6` carries into bit 4 exactly then).
fn hex16(n: u64) -> [u8; 16] {
    fn eight(half: u32) -> [u8; 8] {
        const fn each(b: u8) -> u64 {
            u64::from_ne_bytes([b; 8])
        }
        let x = u64::from(half);
        let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
        let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
        let x = (x | x << 4) & each(0x0f);
        let letters = ((x + each(6)) >> 4) & each(1);
        // Nibble k (from the least significant) is byte k: big-endian bytes put the
        // most significant digit first.
        (x + each(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
    }
    let mut out = [0; 16];
    out[..8].copy_from_slice(&eight((n >> 32) as u32));
    out[8..].copy_from_slice(&eight(n as u32));
    out
}

/// A new, non-zero span id: a per-thread xorshift generator, seeded from the
/// process's random hasher keys and the thread, so ids differ across threads and runs.
fn new_span_id() -> [u8; 8] {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
            static THREADS: AtomicU64 = AtomicU64::new(1);
            let mut h = KEYS.get_or_init(std::hash::RandomState::new).build_hasher();
            h.write_u64(THREADS.fetch_add(1, Relaxed));
            h.finish() | 1
        });
    }
    STATE.with(|state| {
        // xorshift64*: a full-period generator over the non-zero 64-bit values.
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).max(1).to_be_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_the_w3c_example() {
        let tp = TraceParent::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(tp.to_string(), VALID);
        assert_eq!(format!("{tp:?}"), format!("TraceParent({VALID:?})"));
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.flags(), 1);
        let child = tp.child();
        assert_eq!(child.trace_id(), tp.trace_id());
        assert_ne!(child.span_id(), tp.span_id());
        assert_ne!(child.span_id(), tp.child().span_id());
        assert_eq!(child.flags(), 1);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // v00 + more
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(TraceParent::parse(&[0xff; 55]), None);
        // 55 bytes that start with a multi-byte character: refused, never a panic.
        let mut euro = "€".as_bytes().to_vec();
        euro.resize(55, b'0');
        assert_eq!(TraceParent::parse(&euro), None);
        let mut at_dash = VALID.as_bytes().to_vec();
        at_dash[54] = 0xc3;
        assert_eq!(TraceParent::parse(&at_dash), None);
        // Flags version 00 does not define are not passed on.
        let odd = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff";
        assert_eq!(
            TraceParent::parse(odd.as_bytes()).map(|t| t.flags()),
            Some(0b11)
        );
        // A later version may carry more fields after a dash.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert!(TraceParent::parse(later.as_bytes()).is_some());
    }

    /// The eight-at-a-time check agrees with the digit table for every byte value at
    /// every place in a word, and refuses all zeros only.
    #[test]
    fn lower_hex_check_agrees_with_the_table() {
        for b in 0..=255u8 {
            let valid = HEX_VALUES[usize::from(b)] != INVALID;
            for at in 0..16 {
                let mut digits = *b"0123456789abcdef";
                digits[at] = b;
                assert_eq!(is_nonzero_lower_hex(&digits), valid, "{b:#x} at {at}");
                let mut zeros = [b'0'; 16];
                zeros[at] = b;
                let nonzero_hex = valid && b != b'0';
                assert_eq!(
                    is_nonzero_lower_hex(&zeros),
                    nonzero_hex,
                    "{b:#x} among zeros"
                );
            }
        }
        assert!(!is_nonzero_lower_hex(&[b'0'; 32]));
        assert!(is_nonzero_lower_hex(b"4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    /// Eight digits at a time write what the digit table writes, for every nibble at
    /// every place.
    #[test]
    fn span_ids_are_written_as_the_table_writes_them() {
        let table = |n: u64| {
            let mut out = [0u8; 16];
            write_hex(&n.to_be_bytes(), &mut out);
            out
        };
        for place in 0..16 {
            for nibble in 0..16u64 {
                let n = 0x0123_4567_89ab_cdef ^ (nibble << (4 * place));
                assert_eq!(hex16(n), table(n), "{n:#x}");
            }
        }
        for n in [0, 1, u64::MAX, 0xa0a0_a0a0_a0a0_a0a0, 0x9f9f_9f9f_9f9f_9f9f] {
            assert_eq!(hex16(n), table(n), "{n:#x}");
        }
        let tp = TraceParent::parse(VALID.as_bytes()).expect("valid");
        let child = tp.with_span_id([0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10]);
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-fedcba9876543210-01"
        );
    }

    /// A later version is passed on as version 00, and unknown flags are dropped.
    #[test]
    fn later_versions_and_unknown_flags_are_written_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fd-future";
        let tp = TraceParent::parse(later.as_bytes()).expect("valid");
        assert_eq!(tp.to_string(), VALID);
        assert_eq!(tp.flags(), 1);
    }

    #[test]
    fn reads_the_last_headers_and_ignores_a_malformed_parent() {
        let headers = [
            ("tracestate", Some(&b"vendor=1"[..])),
            ("traceparent", Some(&b"garbage"[..])),
            ("traceparent", Some(VALID.as_bytes())),
        ];
        let read = |h: &[(&'static str, Option<&'static [u8]>)]| {
            TraceContext::read(&h.iter().copied().collect::<RequestHeaders<'_>>())
        };
        let cx = read(&headers).expect("context");
        let debug = format!("{cx:?}");
        assert!(
            debug.contains("parent_span_id: \"00f067aa0ba902b7\""),
            "{debug}"
        );
        assert!(debug.contains("state: Some(\"vendor=1\")"), "{debug}");
        assert_eq!(cx.parent().to_string(), VALID);
        assert_eq!(cx.span().trace_id(), cx.parent().trace_id());
        assert_ne!(cx.span().span_id(), cx.parent().span_id());
        assert_eq!(cx.state.as_deref(), Some(&b"vendor=1"[..]));
        let bad = [("traceparent", Some(&b"garbage"[..]))];
        assert_eq!(read(&bad), None);
        assert_eq!(read(&[]), None);
    }
}
