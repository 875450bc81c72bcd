//! Time at the edges. Storage holds Unix seconds (UTC); the wire uses local times in
//! the configured offset, as the original product does (`yyyy-MM-dd HH:mm:ss`, +08:00).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde::{Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type as OType};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use std::cell::Cell;

fn default_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

thread_local! {
    /// The offset in force for the serialisation or parse running on this thread; see
    /// [`with_offset`].
    static SCOPE: Cell<Option<FixedOffset>> = const { Cell::new(None) };
}

/// Runs `f` (a synchronous serialisation or parse) with `offset` as the offset that
/// [`LocalTime`] renders in and local time strings are read in. serde gives a value no
/// way to receive context, so the caller that owns the offset (the envelope writer, the
/// body extractor) passes it in for exactly the span of that call; nothing is kept
/// across an `.await` or between requests.
pub fn with_offset<R>(offset: FixedOffset, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<FixedOffset>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.replace(Some(offset))));
    f()
}

/// The offset set by the enclosing [`with_offset`], or +08:00 (the original product's).
pub fn scoped_offset() -> FixedOffset {
    SCOPE.with(|s| s.get()).unwrap_or_else(default_offset)
}

/// Renders Unix seconds as `yyyy-MM-dd HH:mm:ss` in `offset`.
pub fn format_local(ts: i64, offset: FixedOffset) -> String {
    let mut buf = [0u8; 19];
    match write_local(ts, offset, &mut buf) {
        Some(s) => s.to_owned(),
        None => String::new(),
    }
}

/// Writes `yyyy-MM-dd HH:mm:ss` into `buf` without a format string: every GetChat record
/// carries two of these, and chrono's `format` re-parses its pattern each time.
fn write_local(ts: i64, offset: FixedOffset, buf: &mut [u8; 19]) -> Option<&str> {
    use chrono::{Datelike, Timelike};
    let t = offset.timestamp_opt(ts, 0).single()?.naive_local();
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b' ';
    buf[13] = b':';
    buf[16] = b':';
    std::str::from_utf8(buf).ok()
}

/// Parses a local time as the documented fields send it. Accepts `yyyy-MM-dd HH:mm:ss`
/// (the documented form), `yyyy/MM/dd HH:mm:ss`, a `T` separator, a bare date (midnight),
/// RFC 3339 with its own offset, and all-digit Unix seconds.
pub fn parse_local(s: &str, offset: FixedOffset) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().ok()?;
        // Milliseconds are common from JavaScript callers.
        return Some(if n > 100_000_000_000 { n / 1000 } else { n });
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp());
    }
    let norm = t.replace('/', "-").replace('T', " ");
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&norm, fmt) {
            return offset
                .from_local_datetime(&n)
                .single()
                .map(|d| d.timestamp());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(&norm, "%Y-%m-%d") {
        return offset
            .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .single()
            .map(|d| d.timestamp());
    }
    None
}

/// Unix seconds that serialize as a local time string in the offset set by [`with_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(pub i64);

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 19];
        s.serialize_str(write_local(self.0, scoped_offset(), &mut buf).unwrap_or(""))
    }
}

impl PartialSchema for LocalTime {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(OType::String))
                .description(Some("local time `yyyy-MM-dd HH:mm:ss` in the server's configured offset (default +08:00)"))
                .examples([serde_json::json!("2024-05-02 10:00:00")])
                .build(),
        ))
    }
}
impl ToSchema for LocalTime {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_round_trip_in_the_configured_offset() {
        let off = default_offset();
        let ts = parse_local("2024-05-02 10:00:00", off).unwrap();
        assert_eq!(ts, 1714615200);
        assert_eq!(format_local(ts, off), "2024-05-02 10:00:00");
    }

    #[test]
    fn formatting_matches_chrono_across_dates_and_offsets() {
        for off in [
            default_offset(),
            FixedOffset::west_opt(5 * 3600 + 1800).unwrap(),
        ] {
            for ts in [
                0_i64,
                951_782_400,
                1_714_615_200,
                1_735_689_599,
                4_102_444_800,
            ] {
                let want = off
                    .timestamp_opt(ts, 0)
                    .unwrap()
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string();
                assert_eq!(format_local(ts, off), want);
            }
        }
    }

    #[test]
    fn local_times_render_in_the_offset_passed_in_and_it_does_not_leak() {
        let ts = 1_714_615_200;
        let utc = FixedOffset::east_opt(0).unwrap();
        let s = with_offset(utc, || serde_json::to_string(&LocalTime(ts)).unwrap());
        assert_eq!(s, "\"2024-05-02 02:00:00\"");
        let s = serde_json::to_string(&LocalTime(ts)).unwrap();
        assert_eq!(
            s, "\"2024-05-02 10:00:00\"",
            "outside the scope the default applies"
        );
    }

    #[test]
    fn other_common_time_spellings_are_accepted() {
        let off = default_offset();
        let want = 1714615200;
        assert_eq!(parse_local("2024/05/02 10:00:00", off), Some(want));
        assert_eq!(parse_local("2024-05-02T10:00:00", off), Some(want));
        assert_eq!(parse_local("2024-05-02T02:00:00Z", off), Some(want));
        assert_eq!(parse_local("1714615200", off), Some(want));
        assert_eq!(parse_local("1714615200000", off), Some(want));
        assert_eq!(parse_local("2024-05-02", off), Some(want - 10 * 3600));
        assert_eq!(parse_local("yesterday", off), None);
    }
}
