//! Lenient request values. The original docs disagree with themselves about types
//! (`"pageSize": "string"`, ids as integers here and strings there), so request fields
//! accept a number or a numeric string, treat `null` and `""` as absent, and anything
//! else is a 200012 naming the field (the field path comes from `serde_path_to_error`).
//!
//! Limits are enforced here, while the body is parsed, so no handler and no query ever
//! sees a value the database would choke on: SQLite refuses LIKE patterns over 50,000
//! bytes and expressions deeper than 1,000, PostgreSQL refuses NUL in text, and a time far
//! outside any calendar breaks date arithmetic. docs/api.md ("Limits") lists them.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Most characters in a short string: names, keys, filters.
pub const MAX_SHORT: usize = 1_000;
/// Most characters in a free text (to-do content, message text).
pub const MAX_TEXT: usize = 20_000;
/// Most items in a list.
pub const MAX_LIST: usize = 1_000;
/// Earliest accepted time: 1970-01-01 00:00:00 at UTC+14.
pub const MIN_TIME: i64 = -14 * 3600;
/// Latest accepted time: 2100-12-31 23:59:59 at UTC−12.
pub const MAX_TIME: i64 = 4_133_980_799 + 12 * 3600;
/// Numbers above this are read as milliseconds (1e11 s is in the year 5138).
const MILLIS_FROM: i64 = 100_000_000_000;

/// A bad value, quoted briefly: errdesc must stay readable when the value is 60,000 characters.
fn shown(v: &str) -> String {
    const KEEP: usize = 40;
    match v.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{:?}…", &v[..i]),
        None => format!("{v:?}"),
    }
}

/// Checks a string against a length limit (in characters) and for NUL, which PostgreSQL
/// cannot store in text.
pub fn check_str(v: &str, max: usize) -> Result<(), String> {
    // Bytes bound characters from above, so most strings skip the count.
    if v.len() > max {
        let n = v.chars().count();
        if n > max {
            return Err(format!("must be at most {max} characters (got {n})"));
        }
    }
    if v.contains('\0') {
        return Err("must not contain a NUL character (\\u0000)".into());
    }
    Ok(())
}

/// Checks that Unix seconds fall within the accepted calendar (years 1970 to 2100).
pub fn check_time(ts: i64) -> Result<i64, String> {
    if (MIN_TIME..=MAX_TIME).contains(&ts) {
        Ok(ts)
    } else {
        Err(format!(
            "time out of range: must be between 1970-01-01 and 2100-12-31 \
             (Unix seconds {MIN_TIME} to {MAX_TIME}, or those in milliseconds), got {ts}"
        ))
    }
}

/// An optional integer: JSON number or numeric string; `null`/`""`/absent mean "not given".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptInt(pub Option<i64>);

/// An optional string: JSON string or number (rendered as text); `null` means "not given".
/// An empty string is kept as given: for some filters `""` is a real value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptStr(pub Option<String>);

/// An optional boolean: `true`/`false`, `1`/`0`, or those as strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptBool(pub Option<bool>);

/// An optional decimal number: JSON number or numeric string.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OptNum(pub Option<f64>);

/// An optional point in time: Unix seconds (number or numeric string; milliseconds are
/// recognised) or a local time string such as `2024-05-02 10:00:00` in the configured offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptTime(pub Option<i64>);

impl OptTime {
    pub fn get(self) -> Option<i64> {
        self.0
    }
}

impl<'de> Deserialize<'de> for OptTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("Unix seconds or a time like \"2024-05-02 10:00:00\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let secs = if v > MILLIS_FROM { v / 1000 } else { v };
                check_time(secs).map(Some).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(format!("time out of range: {v}"))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // `as` saturates: 1e308 would become i64::MAX and slip through as a valid
                // millisecond count, so the range is checked on the float first.
                if v.is_finite() && v.abs() < 9.0e15 {
                    self.visit_i64(v.trunc() as i64)
                } else {
                    Err(E::custom(format!("time out of range: {v}")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Ok(None);
                }
                check_str(v, MAX_SHORT).map_err(E::custom)?;
                let ts = crate::timefmt::parse_local(v, crate::timefmt::scoped_offset())
                    .ok_or_else(|| {
                        E::custom(format!(
                            "expected Unix seconds or a time like \"2024-05-02 10:00:00\", got {}",
                            shown(v)
                        ))
                    })?;
                check_time(ts).map(Some).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_any(V).map(OptTime)
    }
}

impl PartialSchema for OptTime {
    fn schema() -> RefOr<Schema> {
        one_of(&[(Type::Integer, None), (Type::String, None)], "Unix seconds, or a local time `yyyy-MM-dd HH:mm:ss` in the server's offset (default +08:00)")
    }
}
impl ToSchema for OptTime {}

/// A list of strings: a JSON array, or one string holding comma-separated values
/// (the docs describe `remindStaff` as an array but type it as a string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrList(pub Vec<String>);

impl OptInt {
    pub fn get(self) -> Option<i64> {
        self.0
    }
    /// The value, treating the documented "all" sentinel `-1` as absent.
    pub fn filter(self) -> Option<i64> {
        self.0.filter(|v| *v != -1)
    }
}

/// The value of a required integer field, or a 200012 naming it.
pub fn required_int(v: OptInt, field: &str) -> Result<i64, crate::error::ApiError> {
    v.0.ok_or_else(|| crate::error::ApiError::param(field, "is required"))
}

/// The value of a required, non-blank string field, or a 200012 naming it.
pub fn required_str(v: &OptStr, field: &str) -> Result<String, crate::error::ApiError> {
    v.non_empty()
        .map(str::to_owned)
        .ok_or_else(|| crate::error::ApiError::param(field, "is required"))
}

impl OptStr {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// A non-empty, trimmed value, for filters where `""` means "no filter".
    pub fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string holding an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("expected an integer, got {v}")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<i64>()
            .map(Some)
            .map_err(|_| E::custom(format!("expected an integer, got {}", shown(v))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(IntVisitor)
    }
}

impl<'de> Deserialize<'de> for OptInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor).map(OptInt)
    }
}

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string holding a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        match t.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(E::custom(format!("expected a number, got {}", shown(v)))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

impl<'de> Deserialize<'de> for OptNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumVisitor).map(OptNum)
    }
}

/// Reads a string (or a number as text) of at most `max` characters, without NUL.
struct StrVisitor {
    max: usize,
}

impl StrVisitor {
    fn checked<E: de::Error>(&self, v: &str) -> Result<(), E> {
        check_str(v, self.max).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.checked(v)?;
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.checked(&v)?;
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for OptStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor { max: MAX_SHORT }).map(OptStr)
    }
}

/// An optional free text (up to [`MAX_TEXT`] characters rather than [`MAX_SHORT`]);
/// otherwise read like [`OptStr`], which it derefs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptText(pub OptStr);

impl std::ops::Deref for OptText {
    type Target = OptStr;
    fn deref(&self) -> &OptStr {
        &self.0
    }
}

impl<'de> Deserialize<'de> for OptText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor { max: MAX_TEXT })
            .map(|v| OptText(OptStr(v)))
    }
}

impl Serialize for OptText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl PartialSchema for OptText {
    fn schema() -> RefOr<Schema> {
        one_of(
            &[(Type::String, None), (Type::Number, None)],
            "text (at most 20000 characters); a number is accepted and read as text",
        )
    }
}
impl ToSchema for OptText {}

/// A list of optional integers (ids), at most [`MAX_LIST`] items; each item is read like
/// [`OptInt`] and its errors name its index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntList(pub Vec<OptInt>);

impl<'de> Deserialize<'de> for IntList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<OptInt>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of integers")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<OptInt>()? {
                    if out.len() == MAX_LIST {
                        return Err(de::Error::custom(too_many()));
                    }
                    out.push(v);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(IntList)
    }
}

impl Serialize for IntList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn too_many() -> String {
    format!("must hold at most {MAX_LIST} items")
}

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0/1, or \"true\"/\"false\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match v {
            0 => Ok(Some(false)),
            1 => Ok(Some(true)),
            _ => Err(E::custom(format!("expected 0 or 1, got {v}"))),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(E::custom(format!("expected a boolean, got {}", shown(v)))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(BoolVisitor)
    }
}

impl<'de> Deserialize<'de> for OptBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolVisitor).map(OptBool)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings or a comma-separated string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let mut out = Vec::new();
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if out.len() == MAX_LIST {
                return Err(E::custom(too_many()));
            }
            check_str(item, MAX_SHORT)
                .map_err(|e| E::custom(format!("item {}: {e}", out.len())))?;
            out.push(item.to_owned());
        }
        Ok(out)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ListVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(OptStr(v)) = seq.next_element::<OptStr>()? {
            n += 1;
            if n > MAX_LIST {
                return Err(de::Error::custom(too_many()));
            }
            if let Some(v) = v {
                if !v.trim().is_empty() {
                    out.push(v.trim().to_owned());
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor).map(StrList)
    }
}

// Serialized as their plain values: request hashing for idempotency keys uses this.
impl Serialize for OptStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl Serialize for OptInt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl Serialize for OptTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl Serialize for OptNum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl Serialize for OptBool {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl Serialize for StrList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

// OpenAPI: say honestly what is accepted, so generated clients send either form.
fn one_of(types: &[(Type, Option<&str>)], desc: &str) -> RefOr<Schema> {
    let mut b = OneOfBuilder::new().description(Some(desc));
    for (t, fmt) in types {
        let mut o = ObjectBuilder::new().schema_type(SchemaType::Type(t.clone()));
        if let Some(p) = fmt {
            o = o.pattern(Some(*p));
        }
        b = b.item(o);
    }
    b = b.item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)));
    RefOr::T(Schema::OneOf(b.build()))
}

impl PartialSchema for OptInt {
    fn schema() -> RefOr<Schema> {
        one_of(
            &[(Type::Integer, None), (Type::String, Some("^-?[0-9]*$"))],
            "integer; a numeric string is accepted too",
        )
    }
}
impl ToSchema for OptInt {}

impl PartialSchema for OptNum {
    fn schema() -> RefOr<Schema> {
        one_of(
            &[(Type::Number, None), (Type::String, None)],
            "number; a numeric string is accepted too",
        )
    }
}
impl ToSchema for OptNum {}

impl PartialSchema for OptStr {
    fn schema() -> RefOr<Schema> {
        one_of(
            &[(Type::String, None), (Type::Number, None)],
            "string; a number is accepted and read as text",
        )
    }
}
impl ToSchema for OptStr {}

impl PartialSchema for OptBool {
    fn schema() -> RefOr<Schema> {
        one_of(
            &[
                (Type::Boolean, None),
                (Type::Integer, None),
                (Type::String, None),
            ],
            "boolean; 0/1 and \"true\"/\"false\" are accepted too",
        )
    }
}
impl ToSchema for OptBool {}

impl PartialSchema for StrList {
    fn schema() -> RefOr<Schema> {
        let arr = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)));
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .description(Some(
                    "array of strings; one comma-separated string is accepted too",
                ))
                .item(arr)
                .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
                .build(),
        ))
    }
}
impl ToSchema for StrList {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        n: OptInt,
        s: OptStr,
        b: OptBool,
        l: StrList,
        f: OptNum,
        t: OptTime,
        x: OptText,
        i: IntList,
    }

    fn parse(j: &str) -> Result<Probe, String> {
        let de = &mut serde_json::Deserializer::from_str(j);
        serde_path_to_error::deserialize(de).map_err(|e| format!("{} {}", e.path(), e.inner()))
    }

    #[test]
    fn integers_are_accepted_as_numbers_or_numeric_strings() {
        assert_eq!(parse(r#"{"n": 5}"#).unwrap().n.get(), Some(5));
        assert_eq!(parse(r#"{"n": "42"}"#).unwrap().n.get(), Some(42));
        assert_eq!(parse(r#"{"n": ""}"#).unwrap().n.get(), None);
        assert_eq!(parse(r#"{"n": null}"#).unwrap().n.get(), None);
        assert_eq!(parse(r#"{"n": 3.0}"#).unwrap().n.get(), Some(3));
    }

    #[test]
    fn a_non_numeric_string_for_an_integer_names_the_field() {
        let err = parse(r#"{"n": "string"}"#).err().unwrap();
        assert!(err.starts_with("n "), "{err}");
        let err = parse(r#"{"n": [1]}"#).err().unwrap();
        assert!(err.starts_with("n "), "{err}");
    }

    #[test]
    fn strings_booleans_and_lists_are_lenient() {
        let p = parse(r#"{"s": 12, "b": "1", "l": "a, b,,c", "f": "1.5"}"#).unwrap();
        assert_eq!(p.s.get(), Some("12"));
        assert_eq!(p.b.0, Some(true));
        assert_eq!(p.l.0, vec!["a", "b", "c"]);
        assert_eq!(p.f.0, Some(1.5));
        let p = parse(r#"{"l": ["x", 7, null], "b": false}"#).unwrap();
        assert_eq!(p.l.0, vec!["x", "7"]);
        assert_eq!(p.b.0, Some(false));
        assert!(parse(r#"{"b": "maybe"}"#).is_err());
    }

    #[test]
    fn times_outside_1970_to_2100_are_refused_and_milliseconds_still_recognised() {
        for bad in [
            "1e308",
            "-1e308",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775808",
            "4200000000",
            "-100000",
            "\"9999-12-31 23:59:59\"",
            "\"0001-01-01\"",
        ] {
            let err = parse(&format!(r#"{{"t": {bad}}}"#))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.starts_with("t "), "{bad}: {err}");
        }
        assert_eq!(
            parse(r#"{"t": 1714615200000}"#).unwrap().t.get(),
            Some(1714615200)
        );
        assert_eq!(
            parse(r#"{"t": 1714615200.7}"#).unwrap().t.get(),
            Some(1714615200)
        );
        assert_eq!(
            parse(r#"{"t": "2100-12-31 23:59:59"}"#).unwrap().t.get(),
            Some(4133951999)
        );
        assert_eq!(parse(r#"{"t": 0}"#).unwrap().t.get(), Some(0));
    }

    #[test]
    fn strings_are_limited_in_length_and_may_not_hold_nul() {
        let long = "中".repeat(MAX_SHORT + 1);
        assert!(parse(&format!(r#"{{"s": "{}"}}"#, &long[3..])).is_ok());
        let err = parse(&format!(r#"{{"s": "{long}"}}"#)).err().unwrap();
        assert!(
            err.starts_with("s ") && err.contains("at most 1000"),
            "{err}"
        );
        assert!(parse(&format!(r#"{{"x": "{long}"}}"#)).is_ok());
        assert!(parse(&format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_TEXT + 1))).is_err());
        let err = parse(r#"{"s": "a\u0000b"}"#).err().unwrap();
        assert!(err.starts_with("s ") && err.contains("NUL"), "{err}");
        let err = parse(r#"{"l": ["ok", "a\u0000"]}"#).err().unwrap();
        assert!(err.starts_with("l[1] "), "{err}");
    }

    #[test]
    fn lists_are_limited_in_length_whatever_their_form() {
        let items = |n: usize| vec!["\"a\""; n].join(",");
        assert_eq!(
            parse(&format!(r#"{{"l": [{}]}}"#, items(MAX_LIST)))
                .unwrap()
                .l
                .0
                .len(),
            MAX_LIST
        );
        for body in [
            format!(r#"{{"l": [{}]}}"#, items(MAX_LIST + 1)),
            format!(r#"{{"l": [{}]}}"#, vec!["null"; MAX_LIST + 1].join(",")),
            format!(r#"{{"l": "{}"}}"#, vec!["a"; MAX_LIST + 1].join(",")),
            format!(r#"{{"i": [{}]}}"#, vec!["1"; MAX_LIST + 1].join(",")),
        ] {
            let err = parse(&body).err().unwrap();
            assert!(err.contains("at most 1000 items"), "{err}");
        }
        assert_eq!(
            parse(r#"{"i": [1, "2", null]}"#).unwrap().i.0,
            vec![OptInt(Some(1)), OptInt(Some(2)), OptInt(None)]
        );
    }

    #[test]
    fn a_long_bad_value_is_quoted_briefly() {
        let err = parse(&format!(r#"{{"n": "{}"}}"#, "z".repeat(60_000)))
            .err()
            .unwrap();
        assert!(err.len() < 200, "{err}");
    }
}
