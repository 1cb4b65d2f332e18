//! Commit metadata as the broker returns it: bytes.
//!
//! rust-rdkafka reads an element's metadata as `&str` and panics on bytes that are not
//! UTF-8 (`TopicPartitionListElem::metadata`, also behind its `Debug` and `PartialEq`).
//! Metadata is whatever the last committer wrote, any client in any language, so the
//! responder reads it here as bytes, and never formats a list of committed offsets.

use rdkafka::TopicPartitionList;

/// The metadata of each element of `tpl`, in the order of `tpl.elements()`.
pub fn metadata_bytes(tpl: &TopicPartitionList) -> Vec<Vec<u8>> {
    // SAFETY: `tpl` owns a live list for the duration of this borrow: `elems` points
    // to `cnt` initialised elements, and each element's `metadata` is null or points
    // to `metadata_size` bytes owned by the list.
    unsafe {
        let list = &*tpl.ptr();
        let count = usize::try_from(list.cnt).unwrap_or(0);
        (0..count)
            .map(|i| {
                let e = &*list.elems.add(i);
                if e.metadata.is_null() || e.metadata_size == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(e.metadata.cast::<u8>(), e.metadata_size).to_vec()
                }
            })
            .collect()
    }
}

/// Sets the metadata of element `index` of `tpl` to any bytes (rust-rdkafka only
/// takes UTF-8): a test writes what a foreign client could.
pub fn set_metadata_bytes(tpl: &mut TopicPartitionList, index: usize, bytes: &[u8]) {
    let mut elements = tpl.elements();
    let Some(elem) = elements.get_mut(index) else {
        return;
    };
    // rust-rdkafka allocates a buffer of the same length (with librdkafka's allocator's
    // counterpart, so the list frees it); the bytes are then written into it.
    elem.set_metadata("\0".repeat(bytes.len()));
    // SAFETY: as in `metadata_bytes`; the buffer was just allocated with
    // `bytes.len()` bytes and is exclusively ours through `&mut tpl`.
    unsafe {
        let list = &*tpl.ptr();
        let e = &*list.elems.add(index);
        if !e.metadata.is_null() && e.metadata_size == bytes.len() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), e.metadata.cast::<u8>(), bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_round_trip() {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        tpl.add_partition("t", 1);
        set_metadata_bytes(&mut tpl, 1, &[0xff, 0x00, 0x80]);
        assert_eq!(metadata_bytes(&tpl), vec![vec![], vec![0xff, 0x00, 0x80]]);
    }
}
