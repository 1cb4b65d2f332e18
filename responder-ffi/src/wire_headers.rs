//! A consumed record's headers read from the record's own bytes, as the broker sent
//! them, without librdkafka's parser.
//!
//! `rd_kafka_message_headers` parses a record's headers into a list of its own on the
//! first call: the list and each header allocated and copied, all freed with the
//! message. For a request with four headers that is some 2,700 instructions under
//! callgrind, more than a tenth of all the responder does for it, and the responder
//! copies the headers into its own buffer right after. So it reads them where
//! librdkafka keeps them unparsed, in the message (`rkm_u.consumer.binhdrs`): the
//! header section of the record (Kafka record format v2), a varint count, then for
//! each header a varint key length, the key, a varint value length (-1: null) and the
//! value, the varints zigzag-encoded.
//!
//! Keys come out as the producer wrote them, byte for byte (librdkafka's list ends a
//! key at its first NUL byte; the Java client, as here, does not).
//!
//! librdkafka does not export that field, so it is read through a mirror of the start
//! of the message's C layout ([`Msg`]: `rd_kafka_msg_t` in `rdkafka_msg.h` of the
//! bundled librdkafka, 2.12.1). Guards, so that another layout can only cost the
//! saving, never a wrong read: the library must be the mirrored version
//! (`rd_kafka_version()`); for every message, the timestamp, its type and the broker id
//! read through the mirror (the fields just before the header section) must equal what
//! librdkafka's accessors return, and the section must parse exactly, to its last byte;
//! and the first record with headers of the process is also read by librdkafka, and the
//! two readings must agree (a record without, until then, must have none for librdkafka
//! either). When a guard fails, [`read`] returns `None` (after a disagreement or
//! another version, always): the caller then uses librdkafka's parser. A test reads
//! records with every kind of header both ways.
//!
//! The two ways differ on one thing: a key with a NUL byte in it is whole here and cut
//! at the NUL in librdkafka's list. A record whose header section does not parse
//! exactly (which the Java client never writes) is read the second way.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use rdkafka::bindings as sys;
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// The start of librdkafka's `rd_kafka_msg_t`, up to the consumer's header section.
/// Read field by field through a raw pointer, never as a whole.
#[repr(C)]
struct Msg {
    /// The public message (its first field, `err`, a C `int`).
    rkmessage: std::mem::MaybeUninit<sys::rd_kafka_message_t>,
    /// `TAILQ_ENTRY(rd_kafka_msg_s) rkm_link`: two pointers.
    link: [*mut c_void; 2],
    flags: c_int,
    /// `rd_kafka_timestamp_type_t`, read as the integer it is in C.
    tstype: c_int,
    timestamp: i64,
    headers: *mut sys::rd_kafka_headers_t,
    /// `rd_kafka_msg_status_t`.
    status: c_int,
    broker_id: i32,
    /// The first member of the `rkm_u.consumer` union arm: `rd_kafkap_bytes_t binhdrs`.
    binhdrs: KafkapBytes,
}

/// The start of librdkafka's `rd_kafkap_bytes_t`.
#[repr(C)]
struct KafkapBytes {
    len: i32,
    data: *const c_void,
}

/// `RD_KAFKA_MSG_F_PRODUCER`: set on produced messages only.
const MSG_F_PRODUCER: c_int = 0x40000;

/// The librdkafka whose layout [`Msg`] mirrors (`rd_kafka_version()`: 2.12.1). With
/// any other (a newer `rdkafka-sys`, or the system's library) the headers come
/// through librdkafka's parser.
const MIRRORED_VERSION: c_int = 0x020c_01ff;

/// Whether the mirror agreed with librdkafka's parser on the first record checked.
static CHECKED: AtomicU8 = AtomicU8::new(UNCHECKED);
const UNCHECKED: u8 = 0;
const AGREED: u8 = 1;
const DISAGREED: u8 = 2;

/// The headers of `message` read from its header section, or `None` when they cannot
/// be read that way (see the module's docs): read them with librdkafka's parser then.
pub fn read<'m>(message: &'m BorrowedMessage<'_>) -> Option<WireHeaders<'m>> {
    match CHECKED.load(Relaxed) {
        AGREED => match section(message) {
            Section::Read(section) => WireHeaders::open(section),
            Section::Parsed | Section::Unlike => None,
        },
        UNCHECKED => first_read(message),
        _ => None,
    }
}

/// [`read`] until a record with headers was read both ways: the mirror is trusted
/// from the first agreement on, and never again after a disagreement. A record that
/// does not parse exactly decides nothing (one malformed record must not cost the
/// process the fast path).
fn first_read<'m>(message: &'m BorrowedMessage<'_>) -> Option<WireHeaders<'m>> {
    let decide = |agree: bool| {
        let verdict = if agree { AGREED } else { DISAGREED };
        // The first verdict stands, whichever thread got there first.
        let _ = CHECKED.compare_exchange(UNCHECKED, verdict, Relaxed, Relaxed);
        agree
    };
    // SAFETY: a plain call, no arguments.
    if unsafe { sys::rd_kafka_version() } != MIRRORED_VERSION {
        decide(false);
        return None;
    }
    let section = match section(message) {
        Section::Read(section) => section,
        Section::Parsed => return None,
        Section::Unlike => {
            // Guards that fail on one record fail on all: the layout is not the mirror's.
            decide(false);
            return None;
        }
    };
    let headers = WireHeaders::parse(section)?;
    if headers.is_empty() {
        // None read through the mirror: librdkafka must see none either.
        return (message.headers().is_none() || decide(false)).then_some(headers);
    }
    decide(agrees(message, &headers)).then_some(headers)
}

/// What the mirror finds in a message.
enum Section<'m> {
    /// Its header section (empty: no headers).
    Read(&'m [u8]),
    /// librdkafka's parsed header list, which it reads instead of the section (an
    /// interceptor may have changed it).
    Parsed,
    /// Fields that are not where the mirror has them: the layout is not the mirror's.
    Unlike,
}

/// The record's header section, through the mirror, if every guard on the mirror holds.
fn section<'m>(message: &'m BorrowedMessage<'_>) -> Section<'m> {
    let ptr = message.ptr();
    let mut tstype: u32 = u32::MAX;
    // SAFETY: `ptr` is the live message `message` borrows; both accessors only read it,
    // and the first writes the timestamp type (a C enum, an `int`) into `tstype`.
    let (timestamp, broker_id) = unsafe {
        let timestamp = sys::rd_kafka_message_timestamp(
            ptr,
            (&raw mut tstype).cast::<sys::rd_kafka_timestamp_type_t>(),
        );
        (timestamp, sys::rd_kafka_message_broker_id(ptr))
    };
    let msg = ptr.cast::<Msg>().cast_const();
    // SAFETY: a consumed message is the first field of librdkafka's `rd_kafka_msg_t`,
    // whose start `Msg` mirrors (for the version checked in `first_read`), and lives as
    // long as `message`. Each field is read alone through the raw pointer, as the plain
    // integer or pointer it is in C (any bits are valid for them), and none of them is
    // written after the message is delivered but `rkm_headers`, by librdkafka's header
    // parser, on the thread that calls it: this one.
    let (err, flags, tstype_, timestamp_, parsed, broker_id_, len, data) = unsafe {
        (
            (&raw const (*msg).rkmessage).cast::<c_int>().read(),
            (&raw const (*msg).flags).read(),
            (&raw const (*msg).tstype).read(),
            (&raw const (*msg).timestamp).read(),
            (&raw const (*msg).headers).read(),
            (&raw const (*msg).broker_id).read(),
            (&raw const (*msg).binhdrs.len).read(),
            (&raw const (*msg).binhdrs.data).read(),
        )
    };
    // A consumed message without an error, its fields where librdkafka's accessors
    // find them.
    if err != 0
        || flags & MSG_F_PRODUCER != 0
        || timestamp_ != timestamp
        || i64::from(tstype_) != i64::from(tstype)
        || broker_id_ != broker_id
    {
        return Section::Unlike;
    }
    if !parsed.is_null() {
        return Section::Parsed;
    }
    match usize::try_from(len) {
        Ok(0) => Section::Read(&[]),
        Ok(len) if !data.is_null() => {
            // SAFETY: librdkafka points `binhdrs` at the record's header section in the
            // fetched (or decompressed) buffer the message holds a reference to, `len`
            // bytes, alive and unchanged as long as the message (as its payload and
            // key are).
            Section::Read(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
        }
        _ => Section::Unlike,
    }
}

/// Whether librdkafka's parser reads the same headers as `headers`.
fn agrees(message: &BorrowedMessage<'_>, headers: &WireHeaders<'_>) -> bool {
    let Some(theirs) = message.headers() else {
        return false;
    };
    let mut ours = headers.clone();
    let mut same = theirs.count() == headers.len();
    crate::raw_headers::for_each(theirs, |k, v| {
        let next = ours.next();
        // librdkafka's list ends a key at its first NUL byte.
        same &=
            next.is_some_and(|(key, value)| key.split(|b| *b == 0).next() == Some(k) && value == v);
    });
    same
}

/// A record's headers, in its header section: read by [`WireHeaders::copy`] (which
/// checks the section as it goes), or as an iterator once checked whole
/// ([`WireHeaders::parse`]).
#[derive(Debug, Clone)]
pub struct WireHeaders<'h> {
    rest: &'h [u8],
    left: usize,
    len: usize,
}

impl<'h> WireHeaders<'h> {
    /// Opens a header section (Kafka record format v2): its count read, the headers
    /// not yet. `None` when the count cannot be right: negative, above librdkafka's
    /// 100,000, or more than the section has room for (two bytes a header at least).
    /// An empty section holds none.
    pub fn open(section: &'h [u8]) -> Option<Self> {
        if section.is_empty() {
            return Some(WireHeaders {
                rest: section,
                left: 0,
                len: 0,
            });
        }
        let mut rest = section;
        let count = usize::try_from(varint(&mut rest)?).ok()?;
        (count <= 100_000 && count <= rest.len() / 2).then_some(WireHeaders {
            rest,
            left: count,
            len: count,
        })
    }

    /// Reads a header section whole: `None` unless it holds its count's headers
    /// exactly.
    pub fn parse(section: &'h [u8]) -> Option<Self> {
        let headers = Self::open(section)?;
        headers.clone().copy(|_, _| ())?;
        Some(headers)
    }

    /// Calls `f` with each header in order (its key and value, `None` for null), then
    /// checks that the section ended with the last one: `None` when it did not add up,
    /// and `f` may then have seen some headers (the caller discards what it made of
    /// them). One pass, where checking first and reading after would take two.
    pub fn copy(mut self, mut f: impl FnMut(&'h [u8], Option<&'h [u8]>)) -> Option<()> {
        while self.left > 0 {
            self.left -= 1;
            let (key, value) = self.read_one()?;
            f(key, value);
        }
        self.rest.is_empty().then_some(())
    }

    /// How many headers (as the section says).
    pub fn len(&self) -> usize {
        self.len
    }

    /// At least the bytes of the headers' keys and values, in all.
    pub fn room(&self) -> usize {
        self.rest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn read_one(&mut self) -> Option<(&'h [u8], Option<&'h [u8]>)> {
        let key_len = usize::try_from(varint(&mut self.rest)?).ok()?;
        let (key, rest) = self.rest.split_at_checked(key_len)?;
        self.rest = rest;
        let value = match varint(&mut self.rest)? {
            -1 => None,
            n => {
                let (value, rest) = self.rest.split_at_checked(usize::try_from(n).ok()?)?;
                self.rest = rest;
                Some(value)
            }
        };
        Some((key, value))
    }
}

/// Each header: the key's bytes, and the value (`None` for a null value). Over a
/// section only opened ([`WireHeaders::open`]) that does not add up, it ends at the
/// first header it cannot read; [`WireHeaders::parse`] checks first.
impl<'h> Iterator for WireHeaders<'h> {
    type Item = (&'h [u8], Option<&'h [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        self.read_one()
    }
}

/// A zigzag varint (as Kafka writes record lengths and counts), at most 10 bytes.
fn varint(b: &mut &[u8]) -> Option<i64> {
    // One byte, the usual case: a count or a length below 64.
    if let Some((&byte, rest)) = b.split_first()
        && byte & 0x80 == 0
    {
        *b = rest;
        return Some(i64::from(byte >> 1) ^ -i64::from(byte & 1));
    }
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as produced: key and value (`None`: null).
    type Header<'a> = (&'a [u8], Option<&'a [u8]>);

    /// A zigzag varint's bytes.
    fn zigzag(n: i64) -> Vec<u8> {
        let mut v = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn section(headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut out = zigzag(headers.len() as i64);
        for (k, v) in headers {
            out.extend(zigzag(k.len() as i64));
            out.extend_from_slice(k);
            match v {
                Some(v) => {
                    out.extend(zigzag(v.len() as i64));
                    out.extend_from_slice(v);
                }
                None => out.extend(zigzag(-1)),
            }
        }
        out
    }

    #[test]
    fn reads_a_header_section() {
        let long = vec![b'x'; 300];
        let headers: [(&[u8], Option<&[u8]>); 5] = [
            (b"kafka_replyTopic", Some(b"replies")),
            (b"\xff\x00key", Some(b"")),
            (b"null", None),
            (b"", Some(&long)),
            (b"kafka_correlationId", Some(b"\x00\x01")),
        ];
        let bytes = section(&headers);
        let parsed = WireHeaders::parse(&bytes).expect("valid");
        let all: usize = headers
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
            .sum();
        assert_eq!(parsed.len(), 5);
        assert!(parsed.room() >= all);
        let mut copied = Vec::new();
        let opened = WireHeaders::open(&bytes).expect("opened");
        assert_eq!(opened.copy(|k, v| copied.push((k, v))), Some(()));
        assert_eq!(copied, headers);
        let read: Vec<_> = parsed.collect();
        assert_eq!(read, headers);
        // Every one-byte zigzag varint, and longer ones.
        for n in [-64, -1, 0, 1, 63, 64, -65, 300, i64::MAX, i64::MIN] {
            let bytes = zigzag(n);
            let mut rest = &bytes[..];
            assert_eq!(varint(&mut rest), Some(n), "{n}");
            assert!(rest.is_empty());
        }
        assert_eq!(WireHeaders::parse(&section(&[])).map(|h| h.len()), Some(0));
        assert_eq!(WireHeaders::parse(&[]).map(|h| h.len()), Some(0));
    }

    #[test]
    fn refuses_a_section_that_does_not_add_up() {
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"a", Some(b"1")), (b"b", None)];
        let bytes = section(&headers);
        for cut in 1..bytes.len() {
            let copied = WireHeaders::open(&bytes[..cut]).and_then(|h| h.copy(|_, _| {}));
            assert_eq!(copied, None, "copied from {cut} bytes");
        }
        for cut in 0..bytes.len() {
            assert!(
                WireHeaders::parse(&bytes[..cut]).is_none() || cut == 0,
                "{cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            WireHeaders::parse(&longer).is_none(),
            "a byte past the last header"
        );
        let mut negative = zigzag(1);
        negative.extend(zigzag(-2));
        assert!(
            WireHeaders::parse(&negative).is_none(),
            "a negative key length"
        );
        assert!(
            WireHeaders::parse(&zigzag(-1)).is_none(),
            "a negative count"
        );
        assert!(
            WireHeaders::parse(&[0xff; 11]).is_none(),
            "a varint past 10 bytes"
        );
        assert!(WireHeaders::parse(&zigzag(100_001)).is_none(), "too many");
        // A count the section has no room for is refused before anything is read.
        let mut room_for_one = zigzag(3);
        room_for_one.extend([0, 0]);
        assert!(WireHeaders::open(&room_for_one).is_none(), "no room for 3");
    }

    /// Records with headers of every kind, and without, produced to librdkafka's mock
    /// broker and consumed: read through the mirror of the message's layout, they are
    /// what was produced; librdkafka's own parser agrees (but for the key cut at its
    /// NUL byte). This is the test that catches a bundled librdkafka whose message
    /// layout no longer matches the mirror.
    #[test]
    fn reads_consumed_records_as_librdkafka_does() {
        use std::time::Duration;

        use rdkafka::message::OwnedHeaders;
        use rdkafka::producer::{BaseRecord, Producer};

        use crate::mock_cluster::MockCluster;
        use crate::raw_headers;

        let broker = MockCluster::start(1).expect("broker");
        broker.create_topic("requests", 1).expect("topic");
        let producer = broker.writer().expect("producer");
        let long = vec![b'v'; 1000];
        let records: Vec<Vec<Header<'_>>> = vec![
            vec![
                (b"kafka_replyTopic", Some(b"replies")),
                (b"kafka_correlationId", Some(b"\x00\x01c")),
                (b"\xff\xfekey", None),
                (b"empty", Some(b"")),
                (b"long", Some(&long)),
            ],
            vec![],
            vec![(b"one", Some(b"1"))],
        ];
        for headers in &records {
            let mut owned = OwnedHeaders::new();
            for (k, v) in headers {
                owned = raw_headers::add(owned, k, *v);
            }
            let record = BaseRecord::<(), [u8]>::to("requests")
                .payload(&b"p"[..])
                .headers(owned);
            producer.send(record).map_err(|(e, _)| e).expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        let consumer = broker.reader("requests", 0).expect("reader");
        for expected in &records {
            let m = consumer
                .poll(Duration::from_secs(10))
                .expect("a record")
                .expect("no error");
            let mut read_ = Vec::new();
            read(&m)
                .expect("read through the mirror")
                .copy(|k, v| read_.push((k, v)))
                .expect("the whole section");
            let read = read_;
            assert_eq!(&read, expected);
            assert_eq!(CHECKED.load(Relaxed), AGREED, "librdkafka's parser agrees");
            let mut theirs = Vec::new();
            if let Some(h) = m.headers() {
                raw_headers::for_each(h, |k, v| theirs.push((k.to_vec(), v.map(<[u8]>::to_vec))));
            }
            let ours: Vec<_> = read
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            assert_eq!(ours, theirs);
        }
    }
}
