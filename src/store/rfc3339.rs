//! Timestamps in JSON exactly as chrono's serde writes them (RFC 3339 in UTC with `Z`, the
//! fraction in 0, 3, 6 or 9 digits as it needs), but written into a buffer at once: chrono
//! formats through `fmt`, which serde_json's `collect_str` takes a few characters at a time
//! (3.5% of a durable create's instructions for its two timestamps).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "rfc3339::serialize")]` for a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let nanos = time.nanosecond();
    // Years outside 0..=9999 and leap seconds are chrono's to write (never made here).
    if !(0..=9999).contains(&time.year()) || nanos >= 1_000_000_000 {
        return time.serialize(serializer);
    }
    let (fraction, digits) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    let mut text = Text::default();
    text.number(time.year() as u32, 4, b'-');
    text.number(time.month(), 2, b'-');
    text.number(time.day(), 2, b'T');
    text.number(time.hour(), 2, b':');
    text.number(time.minute(), 2, b':');
    match digits {
        0 => text.number(time.second(), 2, b'Z'),
        _ => {
            text.number(time.second(), 2, b'.');
            text.number(fraction, digits, b'Z');
        }
    }
    serializer.serialize_str(std::str::from_utf8(text.written()).expect("ASCII"))
}

/// The longest timestamp: `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.
#[derive(Default)]
struct Text {
    bytes: [u8; 30],
    len: usize,
}

impl Text {
    /// `value` in `digits` decimal digits (zero-padded), then `after`.
    fn number(&mut self, mut value: u32, digits: usize, after: u8) {
        for digit in self.bytes[self.len..self.len + digits].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.bytes[self.len + digits] = after;
        self.len += digits + 1;
    }

    fn written(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    /// The same JSON as chrono's own, for every kind of fraction and the ends of the range.
    #[test]
    fn writes_what_chrono_writes() {
        let seconds = [0, 1, 59, 86_399, 951_782_400, 1_764_910_000, 253_402_300_799];
        let nanos = [0, 1, 999, 1_000, 120_000, 5_000_000, 123_456_789, 999_999_999];
        for s in seconds {
            for n in nanos {
                let time = Utc.timestamp_opt(s, n).unwrap();
                let chrono = serde_json::to_string(&time).unwrap();
                assert_eq!(serde_json::to_string(&Ours(time)).unwrap(), chrono, "{s} s {n} ns");
            }
        }
        let far = Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            serde_json::to_string(&Ours(far)).unwrap(),
            serde_json::to_string(&far).unwrap()
        );
    }
}
