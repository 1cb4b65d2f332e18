//! The commit metadata that tells a partition's next owner which requests above the
//! committed offset are already settled, so it skips them instead of answering them
//! again.
//!
//! Format: `kr1@<committed offset>:` followed by comma-separated ranges of offsets
//! relative to that offset, `a` or `a-b` (both inclusive, decimal), ascending. For a
//! commit at 100 with offsets 101, 102, 103 and 107 settled: `kr1@100:1-3,7`. The base
//! is written out so that metadata left beside an offset someone else moved (a reset
//! tool) is recognised as stale and ignored, never applied to other records. The text is cut at
//! [`MAX_METADATA_LEN`] bytes (brokers refuse more than `offset.metadata.max.bytes`,
//! 4096 by default) by leaving out the highest ranges: the next owner then answers
//! those requests again. Metadata that is missing, foreign or malformed (other text,
//! or bytes that are not UTF-8 at all) is ignored the same way: duplicates, never
//! loss. A range may start at the committed offset itself (delta 0): offsets inherited
//! from a previous owner that begin where the watermark now stands.

use std::fmt::Write;

const PREFIX: &str = "kr1@";

/// The longest metadata written.
pub(crate) const MAX_METADATA_LEN: usize = 3000;

/// Encodes settled offsets (ascending, all above `watermark`) as commit metadata.
pub(crate) fn encode(watermark: i64, settled: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::new();
    let mut ranges = settled.into_iter().map(|o| o - watermark).peekable();
    while let Some(start) = ranges.next() {
        let mut end = start;
        while ranges.peek() == Some(&(end + 1)) {
            end += 1;
            ranges.next();
        }
        let before = out.len();
        if before == 0 {
            let _ = write!(out, "{PREFIX}{watermark}:");
        } else {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = if start == end {
            write!(out, "{start}")
        } else {
            write!(out, "{start}-{end}")
        };
        if out.len() > MAX_METADATA_LEN {
            out.truncate(before);
            break;
        }
    }
    out
}

/// Decodes commit metadata (as the broker stored it: any bytes) into absolute,
/// inclusive, ascending, disjoint ranges of settled offsets at or above `watermark`.
/// Anything not in this format yields no ranges.
pub(crate) fn decode(watermark: i64, metadata: &[u8]) -> Vec<(i64, i64)> {
    let Ok(metadata) = std::str::from_utf8(metadata) else {
        return Vec::new();
    };
    let Some((base, body)) = metadata
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
    else {
        return Vec::new();
    };
    if base.parse::<i64>().ok() != Some(watermark) {
        return Vec::new(); // written for another committed offset: stale
    }
    let mut ranges = Vec::new();
    let mut floor = -1i64; // every delta must be above the previous range
    for part in body.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i64>(), b.parse::<i64>()),
            None => (part.parse::<i64>(), part.parse::<i64>()),
        };
        let (Ok(a), Ok(b)) = (a, b) else {
            return Vec::new();
        };
        if a <= floor || b < a {
            return Vec::new();
        }
        let (Some(lo), Some(hi)) = (watermark.checked_add(a), watermark.checked_add(b)) else {
            return Vec::new();
        };
        ranges.push((lo, hi));
        floor = b;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn example() {
        assert_eq!(encode(100, [101, 102, 103, 107]), "kr1@100:1-3,7");
        assert_eq!(decode(100, b"kr1@100:1-3,7"), vec![(101, 103), (107, 107)]);
        // Metadata beside a committed offset someone else moved is ignored.
        assert_eq!(decode(90, b"kr1@100:1-3,7"), vec![]);
        assert_eq!(encode(5, []), "");
        assert_eq!(decode(5, b""), vec![]);
    }

    /// Inherited settled offsets can start right at the watermark: delta 0 must
    /// survive the round trip (it used to be written and then refused, which
    /// discarded every range).
    #[test]
    fn a_range_starting_at_the_watermark_round_trips() {
        assert_eq!(encode(11, [11, 12, 15]), "kr1@11:0-1,4");
        assert_eq!(decode(11, b"kr1@11:0-1,4"), vec![(11, 12), (15, 15)]);
        assert_eq!(decode(11, b"kr1@11:0,0"), vec![], "overlapping ranges");
    }

    #[test]
    fn foreign_or_malformed_metadata_is_ignored() {
        for bad in [
            "hello",
            "kr1:",
            "kr1:0",
            "kr1:3-1",
            "kr1:2,1",
            "kr1:1,,2",
            "kr1:x",
            "kr1:-1",
            "kr1@0:-1",
            "kr1@0:1,1",
        ] {
            assert_eq!(decode(0, bad.as_bytes()), vec![], "{bad}");
        }
        // Bytes another client wrote that are not even UTF-8.
        assert_eq!(decode(0, b"kr1@0:\xff\xfe1"), vec![]);
        assert_eq!(decode(0, &[0x80, 0x81, 0x00]), vec![]);
    }

    #[test]
    fn long_metadata_is_cut_at_a_range_boundary() {
        let settled: Vec<i64> = (1..5000).map(|i| i * 2).collect();
        let m = encode(0, settled.iter().copied());
        assert!(m.len() <= MAX_METADATA_LEN);
        let ranges = decode(0, m.as_bytes());
        assert!(!ranges.is_empty());
        assert!(ranges.iter().all(|(a, b)| a == b && settled.contains(a)));
    }

    proptest! {
        #[test]
        fn round_trip(watermark in 0i64..1_000_000, gaps in proptest::collection::vec(1i64..5, 0..200), at_watermark: bool) {
            let mut settled = Vec::new();
            let mut o = watermark - i64::from(at_watermark);
            for g in gaps {
                o += g;
                settled.push(o);
            }
            let ranges = decode(watermark, encode(watermark, settled.iter().copied()).as_bytes());
            let back: Vec<i64> = ranges.iter().flat_map(|(a, b)| *a..=*b).collect();
            prop_assert_eq!(back, settled);
        }
    }
}
