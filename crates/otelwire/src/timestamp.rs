//! RFC 3339 UTC timestamps with microseconds, without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `2026-11-22T10:00:05.123456Z` into `out`.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let (secs, micros) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(_) => (0, 0),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put(&mut buf[0..4], y as u32);
    put(&mut buf[5..7], m);
    put(&mut buf[8..10], d);
    put(&mut buf[11..13], hh as u32);
    put(&mut buf[14..16], mm as u32);
    put(&mut buf[17..19], ss as u32);
    put(&mut buf[20..26], micros);
    out.extend_from_slice(&buf);
}

/// `t` as an RFC 3339 string.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let mut v = Vec::with_capacity(27);
    write_rfc3339(&mut v, t);
    String::from_utf8(v).unwrap_or_default()
}

fn put(dst: &mut [u8], mut n: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn serialize_opt<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123456Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(rfc3339(t), "2024-02-29T00:00:00.000000Z");
    }
}
