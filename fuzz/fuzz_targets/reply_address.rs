//! Header parsing, reply-address validation and policy parsing on arbitrary bytes.
//!
//! Input layout: `[flags] [policy length] [policy text] ([header selector] [length]
//! [value])*`. Selectors pick among the header names the conventions read, so the
//! fuzzer spends its time on values, repeats and combinations rather than on
//! guessing names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use responder_core::address::{AddressReader, MissingCorrelationId, RequestHeaders};
use responder_core::topic::validate_topic_name;
use responder_core::{HeaderConvention, ReplyTopicPolicy};

const NAMES: &[&str] = &[
    "kafka_replyTopic",
    "kafka_replyPartition",
    "kafka_correlationId",
    "REPLY_TOPIC",
    "REPLY_PARTITION",
    "REPLY_CORRELATION_ID",
    "CORRELATION_ID",
    "responder-deadline",
    "kafka_replytopic",
];

fuzz_target!(|data: &[u8]| {
    let [flags, policy_len, rest @ ..] = data else {
        return;
    };
    let (policy_text, mut rest) = rest.split_at((*policy_len as usize).min(rest.len()));
    let mut headers = OwnedHeaders::new();
    while let [selector, len, tail @ ..] = rest {
        let (value, next) = tail.split_at((*len as usize).min(tail.len()));
        headers = headers.insert(Header {
            key: NAMES[*selector as usize % NAMES.len()],
            value: Some(value),
        });
        rest = next;
    }

    let first = if flags & 1 == 0 {
        HeaderConvention::spring()
    } else {
        HeaderConvention::nestjs()
    };
    let mut reader =
        AddressReader::new([first, HeaderConvention::smallrye(), HeaderConvention::plain()]);
    let lenient = flags & 2 != 0;
    if lenient {
        reader = reader.missing_correlation_id(MissingCorrelationId::ReplyWithout);
    }
    let max = if flags & 4 != 0 { 16 } else { 1024 };
    reader = reader.max_correlation_id_len(max);

    let read: RequestHeaders<'_> = headers.iter().map(|h| (h.key, h.value)).collect();
    let address = reader.read(&read);
    match &address {
        Ok(a) => {
            assert!(validate_topic_name(a.topic.as_bytes()).is_ok(), "{a:?}");
            assert!(a.partition.is_none_or(|p| p >= 0), "{a:?}");
            match &a.correlation_id {
                Some(c) => assert!(!c.is_empty() && c.len() <= max, "{a:?}"),
                None => assert!(lenient, "{a:?}"),
            }
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            let _ = e.to_string();
        }
    }

    if let Ok(text) = std::str::from_utf8(policy_text) {
        if let Ok(policy) = text.parse::<ReplyTopicPolicy>() {
            let printed = policy.to_string();
            let again: ReplyTopicPolicy = printed.parse().expect("a printed policy parses");
            assert_eq!(again, policy, "{text:?} printed as {printed:?}");
            if let Ok(a) = &address {
                assert_eq!(policy.allows(&a.topic), again.allows(&a.topic));
            }
        }
        if let Ok(acls) = responder_core::acl::parse_kafka_acls_list(text) {
            for binding in &acls {
                let _ = responder_core::acl::policy_for_principal(
                    std::slice::from_ref(binding),
                    &binding.principal,
                );
            }
        }
    }
});
