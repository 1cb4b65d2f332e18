//! A histogram of durations for the request path: the same Prometheus histogram
//! `prometheus-client` encodes (buckets of 0.5 ms doubling up to about 16 s, in
//! seconds), observed without a lock.
//!
//! `prometheus-client`'s own `Histogram` takes a mutex and scans the bucket bounds on
//! every observation (about 140 instructions under callgrind); a request observes three
//! histograms. Here an observation is an integer division, a leading-zeros count and
//! three atomic additions. The registry, the text format and the labels stay
//! `prometheus-client`'s: this type plugs into them through its `EncodeMetric` trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
#[cfg(test)]
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The first bucket's upper bound: 0.5 ms.
const FIRST_BOUND_NANOS: u64 = 500_000;
/// Buckets with a finite bound (0.5 ms × 2^k for k in 0..16); one more for +Inf.
const BOUNDS: usize = 16;

/// A duration histogram; clones share their counts (as `prometheus-client`'s metrics
/// do, so a `Family` hands out handles to one series).
#[derive(Debug, Clone, Default)]
pub(crate) struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; BOUNDS + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// Counts one observation.
    #[cfg(test)]
    pub(crate) fn observe(&self, d: Duration) {
        self.observe_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts one observation of `nanos` nanoseconds.
    pub(crate) fn observe_nanos(&self, nanos: u64) {
        self.inner.buckets[bucket_of(nanos)].fetch_add(1, Relaxed);
        self.inner.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The upper bound of bucket `i`, in seconds.
    fn bound(i: usize) -> f64 {
        if i < BOUNDS {
            (FIRST_BOUND_NANOS << i) as f64 / 1e9
        } else {
            f64::INFINITY
        }
    }
}

/// The first bucket whose bound is at least `nanos`: bucket k holds
/// `(0.5 ms × 2^(k-1), 0.5 ms × 2^k]`, so k is the bit length of
/// `(nanos - 1) / 0.5 ms` (0 for at most 0.5 ms).
fn bucket_of(nanos: u64) -> usize {
    let halves = nanos.saturating_sub(1) / FIRST_BOUND_NANOS;
    ((u64::BITS - halves.leading_zeros()) as usize).min(BOUNDS)
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .inner
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| (Self::bound(i), n.load(Relaxed)))
            .collect();
        // The count is the buckets' total, so a scrape during an observation stays
        // consistent with the `+Inf` bucket.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.inner.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
    use prometheus_client::registry::{Registry, Unit};

    #[test]
    fn buckets_match_the_exponential_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(500_000), 0);
        assert_eq!(bucket_of(500_001), 1);
        assert_eq!(bucket_of(1_000_000), 1);
        assert_eq!(bucket_of(1_000_001), 2);
        assert_eq!(bucket_of(16_384_000_000), 15);
        assert_eq!(bucket_of(16_384_000_001), 16);
        assert_eq!(bucket_of(u64::MAX), 16);
        // Every bound against the first bucket that holds it, as a bound scan finds it.
        let bounds = exponential_buckets(0.0005, 2.0, BOUNDS as u16).collect::<Vec<_>>();
        for nanos in (0..40).map(|s| 1u64 << s).flat_map(|n| [n - 1, n, n + 1]) {
            let secs = nanos as f64 / 1e9;
            let scanned = bounds.iter().position(|b| secs <= *b).unwrap_or(BOUNDS);
            assert_eq!(bucket_of(nanos), scanned, "{nanos} ns");
        }
    }

    /// The text a scrape sees is, but for the sum's rounding, what `prometheus-client`'s own histogram gives for the
    /// same observations.
    #[test]
    fn encodes_as_prometheus_clients_histogram() {
        let ours = DurationHistogram::default();
        let theirs = Histogram::new(exponential_buckets(0.0005, 2.0, BOUNDS as u16));
        for millis in [0, 1, 3, 250, 900, 20_000, 2, 2] {
            ours.observe(Duration::from_millis(millis));
            theirs.observe(millis as f64 / 1000.0);
        }
        let text = |register: &dyn Fn(&mut Registry)| {
            let mut r = Registry::default();
            register(&mut r);
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &r).expect("encodes");
            out
        };
        let a = text(&|r| r.register_with_unit("d", "d", Unit::Seconds, ours.clone()));
        let b = text(&|r| r.register_with_unit("d", "d", Unit::Seconds, theirs.clone()));
        // The same lines but the sum, which is exact here (integer nanoseconds) where
        // the float sum rounds (21.158 against 21.157999999999999).
        let without_sum = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("d_seconds_sum"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(without_sum(&a), without_sum(&b));
        assert!(a.contains("d_seconds_sum 21.158\n"), "{a}");
        assert!(a.contains("d_seconds_count 8\n"), "{a}");
    }
}
