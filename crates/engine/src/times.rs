//! Points in time as users and logs write them: RFC 3339 (the logs' stamps, `--since
//! 2026-01-02T03:04:05Z`), unix seconds (`--since 1767323045.5`) and durations before now
//! (`--since 10m`, Go's syntax as docker takes it). All become nanoseconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::EngineError;

/// Nanoseconds since the epoch (negative before it).
pub type Nanos = i128;

const NANOS: i128 = 1_000_000_000;

/// Now, in nanoseconds since the epoch.
pub fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

/// `2024-01-02T03:04:05[.frac](Z|±hh:mm)`; also a date alone (`2024-01-02`) and a time
/// without a zone, both taken as UTC.
pub fn parse_rfc3339(s: &str) -> Option<Nanos> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if s.get(4..5)? != "-"
        || s.get(7..8)? != "-"
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if s.len() == 10 {
        return Some(i128::from(days) * 86_400 * NANOS);
    }
    if !matches!(s.get(10..11)?, "T" | "t" | " ") || s.get(13..14)? != ":" || s.get(16..17)? != ":"
    {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut frac: i128 = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let text = format!("{:0<9}", &f[..digits.min(9)]);
        frac = text.parse().ok()?;
        rest = &f[digits..];
    }
    let offset: i64 = match rest {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let z = &zone[1..];
            if z.len() != 5 || z.get(2..3)? != ":" {
                return None;
            }
            let (oh, om): (i64, i64) = (z.get(0..2)?.parse().ok()?, z.get(3..5)?.parse().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(i128::from(secs) * NANOS + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Go's duration syntax (`300ms`, `1h30m`, `-1.5h`), as nanoseconds.
pub fn parse_duration(text: &str) -> Option<Nanos> {
    let (sign, mut s) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let n = s
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (whole, frac) = s[..n].split_once('.').unwrap_or((&s[..n], ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac_digits = frac.get(..frac.len().min(18))?;
        let frac_value: i128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse().ok()?
        };
        s = &s[n..];
        let u = s
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic() || *b >= 0x80)
            .count();
        let unit: i128 = match &s[..u] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS,
            "m" => 60 * NANOS,
            "h" => 3600 * NANOS,
            _ => return None,
        };
        s = &s[u..];
        let scale = 10i128.pow(u32::try_from(frac_digits.len()).ok()?);
        total = total.checked_add(whole.checked_mul(unit)? + frac_value * unit / scale)?;
    }
    // Go's durations are bounded by i64 nanoseconds.
    (total <= i128::from(i64::MAX)).then_some(i128::from(sign) * total)
}

/// docker's `--since`/`--until` value: a duration before now, unix seconds with an optional
/// fraction, or an RFC 3339 time (or date).
pub fn parse_point(flag: &str, text: &str) -> Result<Nanos, EngineError> {
    let t = text.trim();
    if let Some(d) = parse_duration(t).filter(|_| t.bytes().any(|b| b.is_ascii_alphabetic())) {
        return Ok(now() - d);
    }
    if let Some((secs, frac)) = t.split_once('.').or(Some((t, ""))).filter(|(s, f)| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && f.len() <= 9
            && f.bytes().all(|b| b.is_ascii_digit())
    }) {
        let secs: i128 = secs
            .parse()
            .map_err(|_| EngineError::Invalid(format!("{flag} {text:?}: out of range")))?;
        let frac: i128 = format!("{frac:0<9}").parse().unwrap_or(0);
        return Ok(secs * NANOS + frac);
    }
    parse_rfc3339(t).ok_or_else(|| {
        EngineError::Invalid(format!(
            "invalid {flag} {text:?}: use a duration (10m, 1h30m), unix seconds or an RFC 3339 time"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86_400 * NANOS));
        assert_eq!(
            parse_rfc3339("2000-02-29T01:00:00.5+01:00"),
            Some(951_782_400 * NANOS + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-30T14:39:50.123456789Z"),
            Some(1_796_049_590 * NANOS + 123_456_789)
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400 * NANOS));
        assert_eq!(parse_rfc3339("1970-13-02"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00+0100"), None);
    }

    #[test]
    fn durations_as_go() {
        assert_eq!(parse_duration("10m"), Some(600 * NANOS));
        assert_eq!(parse_duration("1h30m"), Some(5400 * NANOS));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("-2ms"), Some(-2_000_000));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn points() {
        assert_eq!(parse_point("--since", "42").unwrap(), 42 * NANOS);
        assert_eq!(
            parse_point("--since", "42.25").unwrap(),
            42 * NANOS + 250_000_000
        );
        let point = parse_point("--since", "10m").unwrap();
        let ago = now() - point;
        assert!((600 * NANOS..601 * NANOS).contains(&ago), "{ago}");
        assert!(parse_point("--since", "10 minutes").is_err());
        assert!(parse_point("--until", "soon").is_err());
    }
}
