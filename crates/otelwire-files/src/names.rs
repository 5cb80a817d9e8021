//! Names of rotated files: `app.jsonl` rotated at 2026-11-23 10:00:00 UTC
//! becomes `app.20261123T100000Z.jsonl` (then `….jsonl.gz`); a second
//! rotation in the same second gets `app.20261123T100000Z.1.jsonl`, and so on.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a sink's file name splits: `app` and `jsonl` for `app.jsonl`.
#[derive(Debug, Clone)]
pub(crate) struct Naming {
    stem: String,
    /// With its leading dot, or empty.
    ext: String,
}

/// A rotated file of a sink, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    pub(crate) path: PathBuf,
    /// Seconds since 1970 of the rotation.
    pub(crate) secs: u64,
    pub(crate) seq: u64,
    pub(crate) gz: bool,
}

impl Naming {
    pub(crate) fn new(file: &str) -> Self {
        match file.find('.') {
            Some(i) => Naming {
                stem: file[..i].to_owned(),
                ext: file[i..].to_owned(),
            },
            None => Naming {
                stem: file.to_owned(),
                ext: String::new(),
            },
        }
    }

    /// The name for a file rotated at `secs`, the `seq`-th in that second.
    pub(crate) fn rotated(&self, secs: u64, seq: u64) -> String {
        let stamp = stamp(secs);
        if seq == 0 {
            format!("{}.{stamp}{}", self.stem, self.ext)
        } else {
            format!("{}.{stamp}.{seq}{}", self.stem, self.ext)
        }
    }

    /// Parses a directory entry's name as one of this sink's rotated files.
    pub(crate) fn parse(&self, dir: &Path, name: &str) -> Option<Rotated> {
        let (name, gz) = match name.strip_suffix(".gz") {
            Some(n) => (n, true),
            None => (name, false),
        };
        let middle = name
            .strip_prefix(self.stem.as_str())?
            .strip_prefix('.')?
            .strip_suffix(self.ext.as_str())?;
        let (stamp_part, seq) = match middle.split_once('.') {
            Some((s, n)) => (s, n.parse().ok()?),
            None => (middle, 0),
        };
        let secs = parse_stamp(stamp_part)?;
        let file = if gz {
            format!("{name}.gz")
        } else {
            name.to_owned()
        };
        Some(Rotated {
            path: dir.join(file),
            secs,
            seq,
            gz,
        })
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub(crate) fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `YYYYMMDDTHHMMSSZ` (UTC).
fn stamp(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn parse_stamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    Some(days.max(0) as u64 * 86_400 + h * 3600 + mi * 60 + se)
}

// Howard Hinnant's civil-date algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = Naming::new("app.jsonl");
        let secs = 1_795_392_000 + 3600 * 10 + 61; // 2026-11-23T10:01:01Z
        assert_eq!(n.rotated(secs, 0), "app.20261123T100101Z.jsonl");
        assert_eq!(n.rotated(secs, 3), "app.20261123T100101Z.3.jsonl");
        let dir = Path::new("d");
        let r = n.parse(dir, "app.20261123T100101Z.3.jsonl.gz").unwrap();
        assert_eq!((r.secs, r.seq, r.gz), (secs, 3, true));
        assert_eq!(r.path, dir.join("app.20261123T100101Z.3.jsonl.gz"));
        assert_eq!(n.parse(dir, "app.20261123T100101Z.jsonl").unwrap().seq, 0);
        assert!(n.parse(dir, "app.jsonl").is_none());
        assert!(n.parse(dir, "appx.20261123T100101Z.jsonl").is_none());
        assert!(n.parse(dir, "app.20261123T100101Z.jsonl.gz.tmp").is_none());
        assert!(
            Naming::new("audit.jsonl")
                .parse(dir, "app.20261123T100101Z.jsonl")
                .is_none()
        );
    }
}
