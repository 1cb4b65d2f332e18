//! Strimzi `KafkaUser` manifests (`kafka.strimzi.io`, simple authorization).
//!
//! ```yaml
//! apiVersion: kafka.strimzi.io/v1beta2
//! kind: KafkaUser
//! metadata:
//!   name: kyc-responder
//! spec:
//!   authentication:
//!     type: tls
//!   authorization:
//!     type: simple
//!     acls:
//!       - resource: { type: topic, name: kyc-replies-, patternType: prefix }
//!         operations: [Write, Describe]
//! ```

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{AclBinding, AclError, ResourceType, parse_pattern, parse_permission};

/// A `KafkaUser` read from a manifest: its principal and its ACL bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaUser {
    /// `metadata.name`.
    pub name: String,
    /// The principal the broker sees: `User:CN=<name>` with TLS authentication,
    /// `User:<name>` otherwise (SCRAM), as Strimzi documents.
    pub principal: String,
    /// `spec.authorization.acls`, each operation a binding of its own.
    pub acls: Vec<AclBinding>,
}

#[derive(Deserialize)]
struct Manifest {
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Deserialize, Default)]
struct Spec {
    authentication: Option<Typed>,
    authorization: Option<Authorization>,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Authorization {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    acls: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    resource: Resource,
    #[serde(default)]
    operations: Vec<String>,
    /// Deprecated single-operation form.
    operation: Option<String>,
    host: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    #[serde(rename = "patternType")]
    pattern_type: Option<String>,
}

/// Reads the `KafkaUser` named `user` from a manifest (one or several YAML documents,
/// or a `kind: List` as `kubectl get -o yaml` prints). With `user` unset the manifest
/// must hold exactly one `KafkaUser`. Other kinds of resources are skipped.
pub fn parse_strimzi_kafka_user(yaml: &str, user: Option<&str>) -> Result<KafkaUser, AclError> {
    let bad = |m: String| AclError::Manifest(m);
    let mut users = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).map_err(|e| bad(e.to_string()))?;
        collect_users(value, &mut users);
    }
    let mut matching = users.into_iter().filter(|u| {
        user.is_none_or(|want| u.get("metadata").and_then(|m| m.get("name")) == Some(&want.into()))
    });
    let found = match (matching.next(), matching.next(), user) {
        (Some(one), None, _) => one,
        (None, _, Some(want)) => return Err(bad(format!("no KafkaUser named {want:?}"))),
        (None, _, None) => return Err(bad("no KafkaUser in the manifest".into())),
        (Some(_), Some(_), _) => {
            return Err(bad(
                "several KafkaUsers in the manifest: name the one to use".into(),
            ));
        }
    };
    let manifest: Manifest = serde_yaml_ng::from_value(found).map_err(|e| bad(e.to_string()))?;
    read_user(manifest)
}

fn collect_users(value: Value, out: &mut Vec<Value>) {
    match value.get("kind").and_then(Value::as_str) {
        Some("KafkaUser") => out.push(value),
        Some("List") => {
            if let Some(Value::Sequence(items)) = value.get("items") {
                for item in items.clone() {
                    collect_users(item, out);
                }
            }
        }
        _ => {}
    }
}

fn read_user(m: Manifest) -> Result<KafkaUser, AclError> {
    let name = m.metadata.name;
    let bad = |msg: String| AclError::Manifest(format!("KafkaUser {name:?}: {msg}"));
    let principal = match m.spec.authentication.as_ref().map(|a| a.kind.as_str()) {
        Some("tls" | "tls-external") => format!("User:CN={name}"),
        _ => format!("User:{name}"),
    };
    let Some(authz) = m.spec.authorization else {
        return Err(bad(
            "spec.authorization is missing: it grants nothing".into()
        ));
    };
    if authz.kind != "simple" {
        return Err(bad(format!(
            "authorization type {:?} is not `simple`: its rules live outside the manifest",
            authz.kind
        )));
    }
    let mut acls = Vec::new();
    for (i, rule) in authz.acls.into_iter().enumerate() {
        let at = |msg: String| bad(format!("acls[{i}]: {msg}"));
        let resource_type = rule.resource.kind.parse().map_err(at)?;
        let pattern = parse_pattern(rule.resource.pattern_type.as_deref().unwrap_or("literal"))
            .map_err(at)?;
        let permission = parse_permission(rule.kind.as_deref().unwrap_or("allow")).map_err(at)?;
        let operations: Vec<String> = rule.operations.into_iter().chain(rule.operation).collect();
        if operations.is_empty() {
            return Err(at("no operations".into()));
        }
        let name = match (&rule.resource.name, resource_type) {
            (Some(name), _) => name.clone(),
            (None, ResourceType::Cluster) => "kafka-cluster".into(),
            (None, _) => return Err(at("the resource has no name".into())),
        };
        for op in operations {
            acls.push(AclBinding {
                resource_type,
                name: name.clone(),
                pattern,
                principal: principal.clone(),
                host: rule.host.clone().unwrap_or_else(|| "*".into()),
                operation: op.parse().map_err(at)?,
                permission,
            });
        }
    }
    Ok(KafkaUser {
        name,
        principal,
        acls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::AclOperation;
    use crate::policy::{PatternType, Permission};

    const USER: &str = r#"
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaUser
metadata:
  name: kyc
  labels:
    strimzi.io/cluster: my-cluster
spec:
  authentication:
    type: scram-sha-512
  authorization:
    type: simple
    acls:
      - resource:
          type: topic
          name: kyc-replies-
          patternType: prefix
        operations: [Write, Describe]
        host: "*"
      - resource:
          type: topic
          name: kyc-replies-admin
        operation: All
        type: deny
      - resource:
          type: cluster
        operations: [IdempotentWrite]
"#;

    #[test]
    fn rules_become_one_binding_per_operation() {
        let u = parse_strimzi_kafka_user(USER, None).expect("parsed");
        assert_eq!(u.principal, "User:kyc");
        assert_eq!(u.acls.len(), 4);
        assert_eq!(u.acls[0].pattern, PatternType::Prefixed);
        assert_eq!(u.acls[0].operation, AclOperation::Write);
        assert_eq!(u.acls[2].permission, Permission::Deny);
        assert_eq!(u.acls[2].pattern, PatternType::Literal);
        assert_eq!(u.acls[3].resource_type, ResourceType::Cluster);
    }

    #[test]
    fn tls_users_are_distinguished_by_common_name() {
        let yaml = USER.replace("scram-sha-512", "tls");
        let u = parse_strimzi_kafka_user(&yaml, Some("kyc")).expect("parsed");
        assert_eq!(u.principal, "User:CN=kyc");
    }

    #[test]
    fn the_named_user_among_several_documents() {
        let yaml = format!(
            "{}\n---\n{}",
            USER,
            USER.replace("name: kyc\n", "name: other\n")
        );
        assert!(matches!(
            parse_strimzi_kafka_user(&yaml, None),
            Err(AclError::Manifest(_))
        ));
        let u = parse_strimzi_kafka_user(&yaml, Some("other")).expect("parsed");
        assert_eq!(u.name, "other");
        assert!(parse_strimzi_kafka_user(&yaml, Some("nobody")).is_err());
    }

    #[test]
    fn bad_manifests_are_refused() {
        for yaml in [
            "kind: KafkaTopic\nmetadata: {name: t}",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {}",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {authorization: {type: opa}}",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {authorization: {type: simple, acls: [{resource: {type: topic, name: t}, operations: [Scribble]}]}}",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {authorization: {type: simple, acls: [{resource: {type: topic, name: t}}]}}",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {authorization: {type: simple, acls: [{resource: {type: topic, name: t, patternType: match}, operations: [Write]}]}}",
            "{{{ not yaml",
            "kind: KafkaUser\nmetadata: {name: u}\nspec: {authorization: {type: simple, acls: [{resource: {type: topic}, operations: [Write]}]}}",
        ] {
            assert!(parse_strimzi_kafka_user(yaml, None).is_err(), "{yaml}");
        }
    }
}
