//! Request deadlines: after its deadline a request's requester has given up, so the
//! responder does not handle it.
//!
//! A deadline comes from a header (absolute epoch milliseconds, ASCII decimal, as a
//! Spring `DefaultKafkaHeaderMapper` writes a `Long`) and/or from a maximum age added
//! to the record's timestamp. With both, the earlier wins.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::address::{Lookup, RequestHeaders, lookup};

/// The default deadline header: absolute epoch milliseconds as ASCII decimal digits.
pub const DEADLINE_HEADER: &str = "responder-deadline";

/// Where a request's deadline comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadlineRules {
    /// The header holding an absolute deadline, if any is read.
    pub(crate) header: Option<String>,
    /// The age (from the record timestamp) after which a request has expired.
    pub(crate) max_age: Option<Duration>,
}

impl Default for DeadlineRules {
    fn default() -> Self {
        DeadlineRules {
            header: Some(DEADLINE_HEADER.to_owned()),
            max_age: None,
        }
    }
}

/// A request's deadline, as far as it can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// The earliest deadline known, in epoch milliseconds.
    pub(crate) at: Option<i64>,
    /// Why the deadline header could not be read, if it could not.
    pub(crate) unreadable: Option<String>,
}

impl DeadlineRules {
    /// The request's deadline: the earlier of the header's and the maximum age's.
    /// An unreadable header is reported beside the age-derived deadline, which still
    /// applies.
    pub(crate) fn deadline(
        &self,
        headers: &RequestHeaders<'_>,
        timestamp_millis: Option<i64>,
    ) -> Deadline {
        let mut unreadable = None;
        let from_header = match &self.header {
            Some(name) => match lookup(headers, name) {
                Lookup::Absent => None,
                Lookup::Conflicting => {
                    unreadable = Some(format!("header {name} appears with different values"));
                    None
                }
                Lookup::Present(v) => parse_millis(v.unwrap_or_default())
                    .map_err(|why| unreadable = Some(format!("header {name}: {why}")))
                    .ok(),
            },
            None => None,
        };
        let from_age = self.max_age.and_then(|age| {
            let ts = timestamp_millis?;
            Some(ts.saturating_add(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
        });
        let at = match (from_header, from_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Deadline { at, unreadable }
    }
}

/// Epoch milliseconds: 1 to 19 ASCII digits.
fn parse_millis(value: &[u8]) -> Result<i64, String> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "expected epoch milliseconds as ASCII decimal digits, got {:?}",
            String::from_utf8_lossy(&value[..value.len().min(32)])
        ));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "epoch milliseconds out of range".to_owned())
}

/// Now, in epoch milliseconds.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::received::Received;

    fn message(ts: Option<i64>, headers: &[(&str, &[u8])]) -> Received {
        let headers = headers.iter().map(|(k, v)| (k.as_bytes(), Some(*v)));
        Received::new("t", 0, 0, ts, None, None, headers)
    }

    fn deadline_of(rules: &DeadlineRules, m: &Received) -> Deadline {
        rules.deadline(&RequestHeaders::of(m.headers()), m.timestamp_millis())
    }

    #[test]
    fn the_earlier_of_header_and_age_wins() {
        let rules = DeadlineRules {
            max_age: Some(Duration::from_secs(5)),
            ..DeadlineRules::default()
        };
        let m = message(Some(1_000_000), &[(DEADLINE_HEADER, b"1003000")]);
        assert_eq!(deadline_of(&rules, &m).at, Some(1_003_000));
        let m = message(Some(1_000_000), &[(DEADLINE_HEADER, b"1009000")]);
        assert_eq!(deadline_of(&rules, &m).at, Some(1_005_000));
        let m = message(None, &[(DEADLINE_HEADER, b"1009000")]);
        assert_eq!(deadline_of(&rules, &m).at, Some(1_009_000));
        let m = message(Some(1_000_000), &[]);
        assert_eq!(deadline_of(&rules, &m).at, Some(1_005_000));
        assert_eq!(deadline_of(&DeadlineRules::default(), &m).at, None);
    }

    #[test]
    fn malformed_deadlines_are_errors() {
        let rules = DeadlineRules::default();
        for bad in [
            &b""[..],
            b"-5",
            b"12.5",
            &1_700_000_000_000i64.to_be_bytes(),
            b"99999999999999999999",
            b"9999999999999999999",
        ] {
            let m = message(None, &[(DEADLINE_HEADER, bad)]);
            assert!(deadline_of(&rules, &m).unreadable.is_some(), "{bad:?}");
        }
        let m = message(None, &[(DEADLINE_HEADER, b"1"), (DEADLINE_HEADER, b"2")]);
        assert!(deadline_of(&rules, &m).unreadable.is_some());
        let m = message(None, &[(DEADLINE_HEADER, b"1"), (DEADLINE_HEADER, b"1")]);
        assert_eq!(deadline_of(&rules, &m).at, Some(1));
        // An unreadable header does not hide the maximum age.
        let aged = DeadlineRules {
            max_age: Some(Duration::from_secs(1)),
            ..DeadlineRules::default()
        };
        let m = message(Some(5_000), &[(DEADLINE_HEADER, b"soon")]);
        let d = deadline_of(&aged, &m);
        assert_eq!(d.at, Some(6_000));
        assert!(d.unreadable.is_some());
    }
}
