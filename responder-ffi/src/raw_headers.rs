//! A record's headers as librdkafka holds them: keys as bytes.
//!
//! rust-rdkafka reads a header key as `&str` and panics on a key that is not UTF-8
//! (`BorrowedHeaders::try_get` unwraps the conversion). A key is whatever the producer
//! wrote, any client in any language, and neither the broker nor librdkafka checks it:
//! a hostile requester could panic every task that reads its request's headers. The
//! responder reads them here instead, and copies them into dead letters byte for byte.

use std::ffi::{CStr, c_char, c_void};

use rdkafka::bindings as sys;
use rdkafka::message::{BorrowedHeaders, OwnedHeaders};

/// The native list behind `headers` (rust-rdkafka's `BorrowedHeaders` is that pointer).
pub(crate) fn native(headers: &BorrowedHeaders) -> *const sys::rd_kafka_headers_t {
    (headers as *const BorrowedHeaders).cast()
}

/// Calls `f` with each header of `headers`, in order: the key's bytes and the value
/// (`None` for a null value).
pub fn for_each<'h>(headers: &'h BorrowedHeaders, mut f: impl FnMut(&'h [u8], Option<&'h [u8]>)) {
    let list = native(headers);
    for idx in 0.. {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const c_void = std::ptr::null();
        let mut size: usize = 0;
        // SAFETY: `list` is the live header list `headers` owns for 'h; librdkafka
        // writes a NUL-terminated name it owns, and a value of `size` bytes (or null),
        // both alive as long as the list is and never changed while it is borrowed.
        let err =
            unsafe { sys::rd_kafka_header_get_all(list, idx, &mut name, &mut value, &mut size) };
        if err != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return;
        }
        // SAFETY: as above.
        let key: &'h [u8] = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value: Option<&'h [u8]> = if value.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) })
        };
        f(key, value);
    }
}

/// `headers` with one more header, its key any bytes (as read by [`for_each`]).
pub fn add(headers: OwnedHeaders, key: &[u8], value: Option<&[u8]>) -> OwnedHeaders {
    let (value_ptr, value_len) = match value {
        Some(v) => (v.as_ptr().cast::<c_void>(), v.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `headers` is owned here, so nothing else reads its list while librdkafka
    // appends to it; the key and value are copied by librdkafka, with their lengths
    // given (the key need not be NUL-terminated). A key holding a NUL byte cannot come
    // from `for_each` (it ends at the first NUL).
    unsafe {
        sys::rd_kafka_header_add(
            native(headers.as_borrowed()).cast_mut(),
            key.as_ptr().cast::<c_char>(),
            isize::try_from(key.len()).unwrap_or(isize::MAX),
            value_ptr,
            isize::try_from(value_len).unwrap_or(isize::MAX),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_utf8_are_read_and_copied_as_bytes() {
        let headers = add(
            add(OwnedHeaders::new(), b"\xff\xfekey", Some(b"v1")),
            b"plain",
            None,
        );
        let mut read = Vec::new();
        for_each(headers.as_borrowed(), |k, v| {
            read.push((k.to_vec(), v.map(<[u8]>::to_vec)))
        });
        assert_eq!(
            read,
            vec![
                (b"\xff\xfekey".to_vec(), Some(b"v1".to_vec())),
                (b"plain".to_vec(), None),
            ]
        );
        let mut copied = OwnedHeaders::new();
        for (k, v) in &read {
            copied = add(copied, k, v.as_deref());
        }
        let mut again = Vec::new();
        for_each(copied.as_borrowed(), |k, v| {
            again.push((k.to_vec(), v.map(<[u8]>::to_vec)))
        });
        assert_eq!(again, read);
    }
}
