//! The text `kafka-acls --list` prints (Kafka 2.0 and later).
//!
//! ```text
//! Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=replies-, patternType=PREFIXED)`:
//!      (principal=User:svc, host=*, operation=WRITE, permissionType=ALLOW)
//! ```

use super::{AclBinding, AclError, parse_pattern, parse_permission};

/// Parses the output of `kafka-acls --list` (also the `Adding ACLs for resource`
/// blocks `--add` prints). Blank lines are skipped; any other line that is neither a
/// resource header nor an entry under one is an error, so a wrong file is not read
/// as an empty policy.
///
/// Principals may contain commas (`User:CN=svc,OU=payments`): an entry is read from
/// its right-hand end.
pub fn parse_kafka_acls_list(text: &str) -> Result<Vec<AclBinding>, AclError> {
    let mut bindings = Vec::new();
    let mut resource = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| AclError::Syntax {
            line: i + 1,
            message,
        };
        // `--list --principal User:x` heads its output with this line.
        if line.is_empty() || line.starts_with("ACLs for principal `") {
            continue;
        }
        if let Some(rest) = line.split_once("ACLs for resource `").map(|(_, r)| r) {
            let pattern = rest
                .strip_suffix("`:")
                .ok_or_else(|| err("a resource header ends with \"`:\"".into()))?;
            resource = Some(parse_resource(pattern).map_err(err)?);
            continue;
        }
        if line.starts_with("(principal=") {
            let (resource_type, name, pattern) = resource
                .clone()
                .ok_or_else(|| err("an ACL entry before any resource header".into()))?;
            let e = parse_entry(line).map_err(err)?;
            bindings.push(AclBinding {
                resource_type,
                name,
                pattern,
                principal: e.principal,
                host: e.host,
                operation: e.operation.parse().map_err(err)?,
                permission: parse_permission(&e.permission).map_err(err)?,
            });
            continue;
        }
        return Err(err(format!(
            "not a line of `kafka-acls --list` output: {line:?}"
        )));
    }
    Ok(bindings)
}

type Resource = (super::ResourceType, String, crate::policy::PatternType);

/// `ResourcePattern(resourceType=TOPIC, name=replies-, patternType=PREFIXED)`
fn parse_resource(s: &str) -> Result<Resource, String> {
    let inner = s
        .strip_prefix("ResourcePattern(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected ResourcePattern(...), found {s:?}"))?;
    let rest = inner
        .strip_prefix("resourceType=")
        .ok_or_else(|| format!("expected resourceType= in {s:?}"))?;
    let (resource_type, rest) = rest
        .split_once(", name=")
        .ok_or_else(|| format!("expected name= in {s:?}"))?;
    let (name, pattern) = rest
        .rsplit_once(", patternType=")
        .ok_or_else(|| format!("expected patternType= in {s:?}"))?;
    Ok((
        resource_type.parse()?,
        name.to_owned(),
        parse_pattern(pattern)?,
    ))
}

struct Entry {
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

/// `(principal=User:svc, host=*, operation=WRITE, permissionType=ALLOW)`
fn parse_entry(line: &str) -> Result<Entry, String> {
    let inner = line
        .strip_prefix("(principal=")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected (principal=..., ...), found {line:?}"))?;
    let missing = |field: &str| format!("expected {field} in {line:?}");
    let (rest, permission) = inner
        .rsplit_once(", permissionType=")
        .ok_or_else(|| missing("permissionType="))?;
    let (rest, operation) = rest
        .rsplit_once(", operation=")
        .ok_or_else(|| missing("operation="))?;
    let (principal, host) = rest
        .rsplit_once(", host=")
        .ok_or_else(|| missing("host="))?;
    if principal.is_empty() {
        return Err(format!("empty principal in {line:?}"));
    }
    Ok(Entry {
        principal: principal.to_owned(),
        host: host.to_owned(),
        operation: operation.to_owned(),
        permission: permission.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AclOperation, ResourceType};
    use crate::policy::{PatternType, Permission};

    #[test]
    fn entries_belong_to_the_resource_above_them() {
        let text = "Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=kyc, patternType=LITERAL)`: \n \t(principal=User:kyc, host=*, operation=READ, permissionType=ALLOW) \n\nCurrent ACLs for resource `ResourcePattern(resourceType=TOPIC, name=r-, patternType=PREFIXED)`: \n \t(principal=User:CN=kyc,OU=pay, host=10.0.0.1, operation=WRITE, permissionType=DENY)\n";
        let acls = parse_kafka_acls_list(text).expect("parsed");
        assert_eq!(acls.len(), 2);
        assert_eq!(acls[0].resource_type, ResourceType::Group);
        assert_eq!(acls[1].resource_type, ResourceType::Topic);
        assert_eq!(acls[1].name, "r-");
        assert_eq!(acls[1].pattern, PatternType::Prefixed);
        assert_eq!(acls[1].principal, "User:CN=kyc,OU=pay");
        assert_eq!(acls[1].host, "10.0.0.1");
        assert_eq!(acls[1].operation, AclOperation::Write);
        assert_eq!(acls[1].permission, Permission::Deny);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        for (text, line) in [
            (
                "(principal=User:a, host=*, operation=WRITE, permissionType=ALLOW)",
                1,
            ),
            (
                "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=a, patternType=MATCH)`:",
                1,
            ),
            (
                "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=a, patternType=LITERAL)`:\n(principal=User:a, host=*, operation=SCRIBBLE, permissionType=ALLOW)",
                2,
            ),
            (
                "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=a, patternType=LITERAL)`:\n(principal=User:a, operation=WRITE, permissionType=ALLOW)",
                2,
            ),
            (
                "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=a, patternType=LITERAL)`:\n\n  topics: [a]",
                3,
            ),
            ("apiVersion: kafka.strimzi.io/v1beta2", 1),
        ] {
            match parse_kafka_acls_list(text) {
                Err(AclError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_listing_for_one_principal_has_a_heading() {
        let text = "ACLs for principal `User:kyc`\nCurrent ACLs for resource `ResourcePattern(resourceType=TOPIC, name=r, patternType=LITERAL)`: \n \t(principal=User:kyc, host=*, operation=WRITE, permissionType=ALLOW) \n";
        assert_eq!(parse_kafka_acls_list(text).expect("parsed").len(), 1);
    }

    #[test]
    fn an_empty_listing_is_no_acls() {
        assert_eq!(parse_kafka_acls_list("\n  \n").expect("parsed"), vec![]);
    }
}
