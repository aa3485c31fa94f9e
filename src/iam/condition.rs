//! A statement's `Condition` block: parsed and checked when the document is, evaluated against
//! the request's [`Context`]. Semantics as AWS documents them
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>,
//! `reference_policies_condition-logic-multiple-context-keys-or-values.html`): operators and
//! the keys under one operator are ANDed, the values of one key ORed (NORed for a negated
//! operator); a key absent from the request makes an operator false, a negated one true, an
//! `...IfExists` one true; `ForAllValues:` is true for an absent key, `ForAnyValue:` false.

use std::net::IpAddr;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

use super::Context;
use super::wildcard;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

impl Operator {
    /// AWS spells operators with exact case: `stringequals` is "Invalid Condition type".
    fn from_name(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "Null" => Null,
            _ => return None,
        })
    }

    /// The negated operators, whose values are NORed and which hold for an absent key.
    pub fn is_negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    /// A single-valued comparison.
    Single,
    ForAnyValue,
    ForAllValues,
}

/// One key under one operator, with its values.
#[derive(Clone, Debug)]
pub struct Condition {
    pub qualifier: Qualifier,
    pub operator: Operator,
    pub if_exists: bool,
    /// Lowercase: condition key names are case-insensitive.
    pub key: String,
    /// As written, booleans and numbers turned into their JSON text.
    pub values: Vec<String>,
}

/// Parses a `Condition` object into its conditions, or the MalformedPolicy message.
pub fn parse_block(block: &Value) -> Result<Vec<Condition>, String> {
    let Value::Object(operators) = block else {
        return Err("Invalid policy syntax.".into());
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let invalid = || format!("Invalid Condition type : {name}");
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, rest)
        } else {
            (Qualifier::Single, name.as_str())
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator = Operator::from_name(rest).ok_or_else(invalid)?;
        if operator == Operator::Null && (if_exists || qualifier != Qualifier::Single) {
            return Err(invalid());
        }
        let Value::Object(keys) = keys else {
            return Err("Invalid policy syntax.".into());
        };
        for (key, values) in keys {
            if key.is_empty() || !key.contains(':') {
                return Err("Policy has an invalid condition key".into());
            }
            let values = value_list(values)?;
            for value in &values {
                check_value(operator, value)?;
            }
            conditions.push(Condition {
                qualifier,
                operator,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(conditions)
}

/// A value or an array of values; "quotation marks are optional for numeric and Boolean values".
fn value_list(values: &Value) -> Result<Vec<String>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("Invalid policy syntax.".to_owned()),
    };
    match values {
        Value::Array(items) if items.is_empty() => Err("Invalid policy syntax.".into()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

/// Values an operator can never compare with are refused when the document is stored, as AWS
/// refuses a malformed CIDR, rather than silently never matching.
fn check_value(operator: Operator, value: &str) -> Result<(), String> {
    use Operator::*;
    match operator {
        IpAddress | NotIpAddress => Cidr::parse(value)
            .map(|_| ())
            .ok_or_else(|| "Invalid IP address in Conditions".to_owned()),
        Bool | Null
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") =>
        {
            Err(format!("Invalid Condition value for {value}"))
        }
        _ => Ok(()),
    }
}

impl Condition {
    pub fn holds(&self, context: &Context) -> bool {
        let present = context.get(&self.key).filter(|values| !values.is_empty());
        if self.operator == Operator::Null {
            let wants_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            let wants_present = self.values.iter().any(|v| v.eq_ignore_ascii_case("false"));
            return if present.is_some() {
                wants_present
            } else {
                wants_absent
            };
        }
        let Some(request_values) = present else {
            return match self.qualifier {
                _ if self.if_exists => true,
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => false,
                Qualifier::Single => self.operator.is_negated(),
            };
        };
        // For a negated operator one request value "matches" when it equals none of the
        // policy's values.
        let one = |request_value: &String| {
            let any = self
                .values
                .iter()
                .any(|policy_value| compare(self.operator, policy_value, request_value));
            any != self.operator.is_negated()
        };
        match self.qualifier {
            Qualifier::ForAllValues => request_values.iter().all(one),
            Qualifier::ForAnyValue => request_values.iter().any(one),
            Qualifier::Single if self.operator.is_negated() => request_values.iter().all(one),
            Qualifier::Single => request_values.iter().any(one),
        }
    }
}

/// The positive sense of `operator` (StringNotEquals compares as StringEquals) for one policy
/// value against one request value.
fn compare(operator: Operator, policy: &str, request: &str) -> bool {
    use Operator::*;
    match operator {
        StringEquals | StringNotEquals => policy == request,
        StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            policy.to_lowercase() == request.to_lowercase()
        }
        StringLike | StringNotLike => wildcard::matches(policy, request),
        NumericEquals | NumericNotEquals => numeric(policy, request, |a, b| a == b),
        NumericLessThan => numeric(policy, request, |p, r| r < p),
        NumericLessThanEquals => numeric(policy, request, |p, r| r <= p),
        NumericGreaterThan => numeric(policy, request, |p, r| r > p),
        NumericGreaterThanEquals => numeric(policy, request, |p, r| r >= p),
        DateEquals | DateNotEquals => date(policy, request, |p, r| p == r),
        DateLessThan => date(policy, request, |p, r| r < p),
        DateLessThanEquals => date(policy, request, |p, r| r <= p),
        DateGreaterThan => date(policy, request, |p, r| r > p),
        DateGreaterThanEquals => date(policy, request, |p, r| r >= p),
        Bool => policy.eq_ignore_ascii_case(request),
        IpAddress | NotIpAddress => match (Cidr::parse(policy), request.parse::<IpAddr>()) {
            (Some(cidr), Ok(ip)) => cidr.contains(ip),
            _ => false,
        },
        // Handled before any value is compared.
        Null => false,
    }
}

fn numeric(policy: &str, request: &str, op: fn(f64, f64) -> bool) -> bool {
    match (policy.trim().parse::<f64>(), request.trim().parse::<f64>()) {
        (Ok(p), Ok(r)) => op(p, r),
        _ => false,
    }
}

fn date(policy: &str, request: &str, op: fn(i128, i128) -> bool) -> bool {
    match (parse_date(policy), parse_date(request)) {
        (Some(p), Some(r)) => op(p, r),
        _ => false,
    }
}

/// A date as nanoseconds since the epoch: RFC 3339, the other ISO 8601 forms, a bare
/// `YYYY-MM-DD` (midnight UTC), or epoch seconds.
pub fn parse_date(text: &str) -> Option<i128> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(i128::from(seconds) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::PARSING) {
        return Some(t.unix_timestamp_nanos());
    }
    let day = time::Date::parse(text, &Iso8601::PARSING).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp_nanos())
}

/// An IPv4 or IPv6 block; a bare address is a /32 or /128, as AWS reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse().ok().filter(|n| *n <= max)?
            }
            Some(_) => return None,
        };
        Some(Cidr { address, prefix })
    }

    pub fn prefix(self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(self) -> bool {
        self.address.is_ipv4()
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a
    /// dual-stack socket reports an IPv4 peer) counts as its IPv4 address.
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the top `prefix` bits of two left-aligned 128-bit addresses agree.
fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(pairs: &[(&str, &[&str])]) -> Context {
        let mut c = Context::default();
        for (k, vs) in pairs {
            c.values.insert(
                k.to_ascii_lowercase(),
                vs.iter().map(|v| (*v).to_owned()).collect(),
            );
        }
        c
    }

    /// Whether every condition of `block` holds in `c`.
    fn holds(block: Value, c: &Context) -> bool {
        parse_block(&block)
            .expect("valid block")
            .iter()
            .all(|cond| cond.holds(c))
    }

    #[test]
    fn string_operators() {
        let c = ctx(&[("s3:prefix", &["home/alice/"])]);
        assert!(holds(
            json!({"StringEquals": {"s3:prefix": "home/alice/"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"s3:prefix": "home/Alice/"}}),
            &c
        ));
        assert!(holds(
            json!({"StringEquals": {"s3:prefix": ["x", "home/alice/"]}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEquals": {"s3:prefix": ["x", "home/alice/"]}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotEquals": {"s3:prefix": ["x", "y"]}}),
            &c
        ));
        assert!(holds(
            json!({"StringEqualsIgnoreCase": {"s3:prefix": "HOME/ALICE/"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEqualsIgnoreCase": {"s3:prefix": "HOME/ALICE/"}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotEqualsIgnoreCase": {"s3:prefix": "home/bob/"}}),
            &c
        ));
        assert!(holds(json!({"StringLike": {"s3:prefix": "home/*"}}), &c));
        assert!(holds(
            json!({"StringLike": {"s3:prefix": "home/alic?/"}}),
            &c
        ));
        assert!(!holds(json!({"StringLike": {"s3:prefix": "Home/*"}}), &c));
        assert!(!holds(
            json!({"StringNotLike": {"s3:prefix": "home/*"}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotLike": {"s3:prefix": ["tmp/*", "var/*"]}}),
            &c
        ));
    }

    #[test]
    fn keys_are_case_insensitive_values_are_not() {
        let c = ctx(&[("s3:x-amz-acl", &["public-read"])]);
        assert!(holds(
            json!({"StringEquals": {"S3:X-Amz-Acl": "public-read"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"s3:x-amz-acl": "Public-Read"}}),
            &c
        ));
    }

    #[test]
    fn missing_key_false_negated_true_if_exists_true() {
        let c = Context::default();
        assert!(!holds(json!({"StringEquals": {"s3:prefix": "a"}}), &c));
        assert!(!holds(json!({"StringLike": {"s3:prefix": "*"}}), &c));
        assert!(holds(json!({"StringNotEquals": {"s3:prefix": "a"}}), &c));
        assert!(holds(json!({"StringNotLike": {"s3:prefix": "a"}}), &c));
        assert!(holds(
            json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            &c
        ));
        assert!(!holds(
            json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
            &c
        ));
        assert!(holds(
            json!({"StringEqualsIfExists": {"s3:prefix": "a"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericLessThanIfExists": {"s3:max-keys": "10"}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericLessThan": {"s3:max-keys": "10"}}),
            &c
        ));
        let present = ctx(&[("s3:prefix", &["b"])]);
        assert!(!holds(
            json!({"StringEqualsIfExists": {"s3:prefix": "a"}}),
            &present
        ));
    }

    #[test]
    fn keys_and_operators_are_anded() {
        let c = ctx(&[("s3:prefix", &["a"]), ("s3:delimiter", &["/"])]);
        assert!(holds(
            json!({"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"s3:prefix": "a", "s3:delimiter": "-"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"s3:prefix": "a"}, "StringLike": {"s3:delimiter": "x*"}}),
            &c
        ));
    }

    #[test]
    fn ip_address_operators() {
        let v4 = ctx(&[("aws:sourceip", &["192.168.1.20"])]);
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "192.168.1.0/24"}}),
            &v4
        ));
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "192.168.1.20"}}),
            &v4
        ));
        assert!(!holds(
            json!({"IpAddress": {"aws:SourceIp": "192.168.2.0/24"}}),
            &v4
        ));
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}),
            &v4
        ));
        assert!(holds(
            json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            &v4
        ));
        assert!(!holds(
            json!({"NotIpAddress": {"aws:SourceIp": "192.0.0.0/2"}}),
            &v4
        ));
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
            &v4
        ));
        assert!(!holds(json!({"IpAddress": {"aws:SourceIp": "::/0"}}), &v4));
        let mapped = ctx(&[("aws:sourceip", &["::ffff:192.168.1.20"])]);
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "192.168.1.0/24"}}),
            &mapped
        ));
        let v6 = ctx(&[("aws:sourceip", &["2001:db8::1"])]);
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}),
            &v6
        ));
        assert!(!holds(
            json!({"IpAddress": {"aws:SourceIp": "2001:db9::/32"}}),
            &v6
        ));
        assert!(holds(
            json!({"IpAddress": {"aws:SourceIp": "2001:db8::1"}}),
            &v6
        ));
        assert!(!holds(
            json!({"IpAddress": {"aws:SourceIp": "192.168.1.0/24"}}),
            &v6
        ));
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(Cidr::parse("10.0.0.0/8").map(Cidr::prefix), Some(8));
        assert_eq!(Cidr::parse("10.1.2.3").map(Cidr::prefix), Some(32));
        assert_eq!(Cidr::parse("::1").map(Cidr::prefix), Some(128));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("::/129").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0.0/+8").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("host").is_none());
        let odd = Cidr::parse("10.0.0.128/25").expect("cidr");
        assert!(odd.contains("10.0.0.200".parse().expect("ip")));
        assert!(!odd.contains("10.0.0.127".parse().expect("ip")));
        assert_eq!(
            parse_block(&json!({"IpAddress": {"aws:SourceIp": "300.0.0.1"}})).unwrap_err(),
            "Invalid IP address in Conditions"
        );
    }

    #[test]
    fn bool_operator() {
        let secure = ctx(&[("aws:securetransport", &["true"])]);
        let plain = ctx(&[("aws:securetransport", &["false"])]);
        assert!(holds(
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            &secure
        ));
        assert!(holds(
            json!({"Bool": {"aws:SecureTransport": true}}),
            &secure
        ));
        assert!(!holds(
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            &plain
        ));
        assert!(holds(
            json!({"Bool": {"aws:SecureTransport": false}}),
            &plain
        ));
        assert!(!holds(
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            &Context::default()
        ));
        assert!(parse_block(&json!({"Bool": {"aws:SecureTransport": "yes"}})).is_err());
    }

    #[test]
    fn date_operators_iso_and_epoch() {
        let c = ctx(&[("aws:currenttime", &["2026-06-15T12:00:00Z"])]);
        assert!(holds(
            json!({"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}}),
            &c
        ));
        assert!(!holds(
            json!({"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}),
            &c
        ));
        assert!(holds(
            json!({"DateGreaterThan": {"aws:CurrentTime": "2026-01-01"}}),
            &c
        ));
        assert!(holds(
            json!({"DateGreaterThanEquals": {"aws:CurrentTime": "2026-06-15T12:00:00Z"}}),
            &c
        ));
        assert!(holds(
            json!({"DateLessThanEquals": {"aws:CurrentTime": "2026-06-15T14:00:00+02:00"}}),
            &c
        ));
        assert!(holds(
            json!({"DateEquals": {"aws:CurrentTime": "2026-06-15T12:00:00.000Z"}}),
            &c
        ));
        assert!(!holds(
            json!({"DateNotEquals": {"aws:CurrentTime": "2026-06-15T12:00:00Z"}}),
            &c
        ));
        // 2026-06-15T12:00:00Z is 1781524800 seconds after the epoch.
        assert!(holds(
            json!({"DateEquals": {"aws:CurrentTime": 1781524800}}),
            &c
        ));
        assert!(holds(
            json!({"DateLessThan": {"aws:CurrentTime": "1781524801"}}),
            &c
        ));
        assert!(!holds(
            json!({"DateLessThan": {"aws:CurrentTime": "not a date"}}),
            &c
        ));
    }

    #[test]
    fn numeric_operators() {
        let c = ctx(&[("s3:max-keys", &["100"])]);
        assert!(holds(json!({"NumericEquals": {"s3:max-keys": 100}}), &c));
        assert!(holds(
            json!({"NumericEquals": {"s3:max-keys": "100.0"}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericNotEquals": {"s3:max-keys": "100"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericNotEquals": {"s3:max-keys": "10"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericLessThan": {"s3:max-keys": "101"}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericLessThan": {"s3:max-keys": "100"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericLessThanEquals": {"s3:max-keys": "100"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericGreaterThan": {"s3:max-keys": "99.5"}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericGreaterThan": {"s3:max-keys": "100"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericGreaterThanEquals": {"s3:max-keys": "100"}}),
            &c
        ));
        let bad = ctx(&[("s3:max-keys", &["lots"])]);
        assert!(!holds(
            json!({"NumericLessThan": {"s3:max-keys": "101"}}),
            &bad
        ));
    }

    #[test]
    fn null_operator() {
        let c = ctx(&[("s3:prefix", &["a"])]);
        assert!(holds(json!({"Null": {"s3:prefix": "false"}}), &c));
        assert!(!holds(json!({"Null": {"s3:prefix": true}}), &c));
        assert!(holds(json!({"Null": {"s3:delimiter": "true"}}), &c));
        assert!(!holds(json!({"Null": {"s3:delimiter": "false"}}), &c));
        assert!(parse_block(&json!({"NullIfExists": {"s3:prefix": "true"}})).is_err());
    }

    #[test]
    fn set_qualifiers() {
        let c = ctx(&[("aws:tagkeys", &["a", "b"])]);
        assert!(holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["z"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["a"]}}),
            &c
        ));
        let empty = Context::default();
        assert!(holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}),
            &empty
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}),
            &empty
        ));
        assert!(holds(
            json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["a"]}}),
            &empty
        ));
    }

    #[test]
    fn malformed_blocks() {
        assert_eq!(
            parse_block(&json!({"StringEqualz": {"s3:prefix": "a"}})).unwrap_err(),
            "Invalid Condition type : StringEqualz"
        );
        assert!(parse_block(&json!({"stringequals": {"s3:prefix": "a"}})).is_err());
        assert!(parse_block(&json!({"ForSomeValues:StringEquals": {"s3:prefix": "a"}})).is_err());
        assert!(parse_block(&json!({"StringEquals": "a"})).is_err());
        assert!(parse_block(&json!({"StringEquals": {"prefix": "a"}})).is_err());
        assert!(parse_block(&json!({"StringEquals": {"s3:prefix": []}})).is_err());
        assert!(parse_block(&json!({"StringEquals": {"s3:prefix": {"a": 1}}})).is_err());
        assert!(parse_block(&json!(["StringEquals"])).is_err());
    }
}
