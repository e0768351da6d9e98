//! Human-readable sizes and ages for tables, as docker prints them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes as docker prints them everywhere (`images`, `system df`, `ps -s`): decimal units and
/// three significant digits ("4.26MB", "10.2kB", "999B"), as go-units'
/// `HumanSizeWithPrecision(size, 3)`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    // Three significant digits; a value that rounds up to 1000 moves to the next unit
    // (Go's %g would print "1e+03").
    let decimals = |v: f64| {
        if v >= 100.0 {
            0
        } else if v >= 10.0 {
            1
        } else {
            2
        }
    };
    let mut text = format!("{v:.*}", decimals(v));
    if text.parse::<f64>().is_ok_and(|r| r >= 1000.0) && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
        text = format!("{v:.*}", decimals(v));
    }
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    text + UNITS[u]
}

/// Seconds since the epoch of an RFC 3339 time ("2024-01-02T03:04:05[.frac](Z|+hh:mm)").
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let oh: i64 = off.get(0..2)?.parse().ok()?;
        let om: i64 = off.get(3..5)?.parse().ok()?;
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        t -= sign * (oh * 3600 + om * 60);
    }
    Some(t)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration as docker words it (go-units' `HumanDuration`): "Less than a second",
/// "About a minute", "47 hours", "2 weeks"...
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let hours = (s + 1800) / 3600;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// "2 hours ago" for an RFC 3339 time, as docker's CREATED column; the raw text when it
/// does not parse.
pub fn age(created: Option<&str>) -> String {
    let Some(c) = created else {
        return "N/A".into();
    };
    let Some(t) = parse_rfc3339(c) else {
        return c.to_string();
    };
    format!("{} ago", duration(now() - t))
}

/// Renders a Go-template-ish `--format` for one row: `{{.Field}}` (also `{{ .Field }}`) is
/// replaced by `field(name)`, `{{json .}}` by `json`, and `\t` / `\n` escapes are honoured as
/// docker's. An unknown field is an error naming it.
pub fn template(
    tmpl: &str,
    json: &str,
    field: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = tmpl;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("unclosed action in template {tmpl:?}"));
        };
        let action = after[..j].trim();
        if action == "json ." {
            out.push_str(json);
        } else if let Some(name) = action.strip_prefix('.') {
            out.push_str(
                &field(name).ok_or_else(|| format!("template: no field {name:?} in {tmpl:?}"))?,
            );
        } else {
            return Err(format!(
                "template: unsupported action {{{{{action}}}}} (only {{{{.Field}}}} and {{{{json .}}}})"
            ));
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out.replace("\\t", "\t").replace("\\n", "\n"))
}

/// Prints `rows` (JSON objects, one per line of output) through a `--format` template, as
/// docker's: `{{.Key}}` is the row's field (an array's items joined by ","), `{{json .}}` the
/// row; a template that starts with `table ` gets a header line, from `headers` (field, title),
/// and its `\t`-separated cells aligned.
pub fn print_template(
    tmpl: &str,
    rows: &[serde_json::Value],
    headers: &[(&str, &str)],
) -> Result<(), String> {
    let field_of = |r: &serde_json::Value, name: &str| match &r[name] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    };
    let (tmpl, aligned) = match tmpl.strip_prefix("table ") {
        Some(t) => (t, true),
        None => (tmpl, false),
    };
    let mut lines = Vec::new();
    if aligned {
        let title = |name: &str| {
            headers
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, t)| (*t).to_string())
                .or_else(|| Some(name.to_uppercase()))
        };
        lines.push(template(tmpl, "", &title)?);
    }
    for r in rows {
        lines.push(template(tmpl, &r.to_string(), &|n| field_of(r, n))?);
    }
    if aligned {
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(String::from).collect())
            .collect();
        if let Some((head, body)) = cells.split_first() {
            let head: Vec<&str> = head.iter().map(String::as_str).collect();
            table(&head, body);
        }
    } else {
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

/// Prints rows as left-aligned columns separated by three spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_as_docker() {
        assert_eq!(super::size(0), "0B");
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(10_240), "10.2kB");
        assert_eq!(super::size(4_261_000), "4.26MB");
        assert_eq!(super::size(1_234_000), "1.23MB");
        assert_eq!(super::size(1_000_000), "1MB");
        assert_eq!(super::size(77_800_000), "77.8MB");
        assert_eq!(super::size(123_456_789), "123MB");
        assert_eq!(super::size(999_600), "1MB", "rounds into the next unit");
        assert_eq!(super::size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn durations_as_docker() {
        assert_eq!(super::duration(0), "Less than a second");
        assert_eq!(super::duration(5), "5 seconds");
        assert_eq!(super::duration(90), "About a minute");
        assert_eq!(super::duration(7200), "2 hours");
        assert_eq!(super::duration(47 * 3600), "47 hours");
        assert_eq!(super::duration(3 * 86400), "3 days");
        assert_eq!(super::duration(21 * 86400), "3 weeks");
        assert_eq!(super::duration(90 * 86400), "3 months");
        assert_eq!(super::duration(3 * 365 * 86400), "3 years");
    }

    #[test]
    fn templates() {
        let f = |n: &str| (n == "Tag").then(|| "v1".to_string());
        assert_eq!(
            super::template("x:{{.Tag}}\\t{{ .Tag }}", "{}", &f).unwrap(),
            "x:v1\tv1"
        );
        assert_eq!(
            super::template("{{json .}}", "{\"a\":1}", &f).unwrap(),
            "{\"a\":1}"
        );
        assert!(super::template("{{.Nope}}", "", &f)
            .unwrap_err()
            .contains("Nope"));
        assert!(super::template("{{.Tag", "", &f).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(super::parse_rfc3339("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(
            super::parse_rfc3339("2000-02-29T01:00:00.5+01:00"),
            Some(951_782_400)
        );
    }
}
