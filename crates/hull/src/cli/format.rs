//! What the commands print, as docker prints it: sizes, ages, aligned tables, `--format`
//! templates (`{{.ID}}\t{{.Names}}`, `table ...`), and the prompt before a prune.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use hull_engine::EngineError;

/// Bytes as docker prints them in `images`, `system df`, `stats`: decimal units and three
/// significant digits ("4.26MB", "10.2kB", "999B"), go-units' `HumanSizeWithPrecision(n, 3)`.
pub fn size(bytes: u64) -> String {
    si_size3(bytes)
}

/// Go's `%.{digits}g` of `v`: that many significant digits, trailing zeros dropped.
fn significant(v: f64, digits: usize) -> String {
    // Digits before the point (of the rounded value: 999.97 is "1000").
    let whole = format!("{v:.0}").len();
    let text = format!("{v:.*}", digits.saturating_sub(whole));
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn scaled(bytes: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= base && u < units.len() - 1 {
        v /= base;
        u += 1;
    }
    // A value that rounds to more digits than asked (999.6 at three) moves to the next unit,
    // where Go's %g would print "1e+03".
    if format!("{v:.0}").len() > digits && u < units.len() - 1 {
        v /= base;
        u += 1;
    }
    format!("{}{}", significant(v, digits), units[u])
}

/// docker's `units.BytesSize`: binary units, 4 significant digits ("1.5MiB").
pub fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// docker's `units.HumanSizeWithPrecision(bytes, 3)`: SI units ("1.23kB").
pub fn si_size3(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    hull_engine::times::parse_rfc3339(s)
        .and_then(|n| i64::try_from(n.div_euclid(1_000_000_000)).ok())
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

/// A `--format` template: `{{.Field}}` placeholders in text, `\t` between columns; with the
/// `table` prefix, printed as an aligned table under a header.
#[derive(Debug)]
pub struct Template {
    pub table: bool,
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Field(String),
}

impl Template {
    /// Parses `text`; `fields` are the names the command knows.
    pub fn parse(text: &str, fields: &[&str]) -> Result<Template, EngineError> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, text),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(open) = rest.find("{{") {
            parts.push(Part::Text(rest[..open].to_string()));
            let close = rest[open..].find("}}").ok_or_else(|| {
                EngineError::Invalid(format!("template {text:?}: unclosed action"))
            })? + open;
            let action = rest[open + 2..close].trim();
            let name = action
                .strip_prefix('.')
                .filter(|n| fields.contains(n))
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "template {text:?}: cannot evaluate {action:?}: use {}",
                        fields
                            .iter()
                            .map(|f| format!("{{{{.{f}}}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ))
                })?;
            parts.push(Part::Field(name.to_string()));
            rest = &rest[close + 2..];
        }
        parts.push(Part::Text(rest.to_string()));
        Ok(Template { table, parts })
    }

    /// The template filled in by `value` of each field.
    pub fn render(&self, value: &dyn Fn(&str) -> String) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => value(f),
            })
            .collect()
    }

    /// Prints one line per item, or with `table` an aligned table whose header names each
    /// field by `title`.
    pub fn print<F: Fn(&str) -> String>(&self, rows: &[F], title: &dyn Fn(&str) -> String) {
        let lines: Vec<String> = rows.iter().map(|r| self.render(r)).collect();
        if !self.table {
            for l in lines {
                println!("{l}");
            }
            return;
        }
        let header = self.render(title);
        let cells = |l: &str| l.split('\t').map(String::from).collect::<Vec<_>>();
        let head = cells(&header);
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        table(&head, &lines.iter().map(|l| cells(l)).collect::<Vec<_>>());
    }
}

/// Prints JSON objects (one per item) through `--format` template `text`: `{{.Key}}` is the
/// object's field (an array's items joined by ","); a `table` template titles each field by
/// `titles` (field, title), else by its name in capitals.
pub fn print_json_rows(
    text: &str,
    rows: &[serde_json::Value],
    titles: &[(&str, &str)],
) -> Result<(), EngineError> {
    let fields: Vec<&str> = rows
        .first()
        .and_then(|r| r.as_object())
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_else(|| titles.iter().map(|(f, _)| *f).collect());
    let t = Template::parse(text, &fields)?;
    let value = |r: &serde_json::Value, name: &str| match &r[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let items: Vec<_> = rows.iter().map(|r| move |f: &str| value(r, f)).collect();
    let title = |name: &str| {
        titles
            .iter()
            .find(|(f, _)| *f == name)
            .map_or_else(|| name.to_uppercase(), |(_, t)| (*t).to_string())
    };
    t.print(&items, &title);
    Ok(())
}

/// docker's prompt before a prune: `what` it removes; no answer (or no terminal to ask on) is
/// no.
pub fn confirm(what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        // One line: a list asked as `:\n  - a\n  - b` reads `a, b`.
        let listed = what.replacen(":\n  - ", "", 1).replace("\n  - ", ", ");
        return Err(EngineError::Invalid(format!(
            "this removes {listed}: confirm with -f (stdin is not a terminal to ask on)"
        ))
        .into());
    }
    let space = if what.starts_with(':') { "" } else { " " };
    eprint!("WARNING! This will remove{space}{what}.\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_times() {
        assert_eq!(super::size(0), "0B");
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(10_240), "10.2kB");
        assert_eq!(super::size(4_261_000), "4.26MB");
        assert_eq!(super::size(1_234_000), "1.23MB");
        assert_eq!(super::size(1_000_000), "1MB");
        assert_eq!(super::size(123_456_789), "123MB");
        assert_eq!(super::size(999_600), "1MB", "rounds into the next unit");
        assert_eq!(
            super::binary_size(1_048_575),
            "1024KiB",
            "four digits hold 1024"
        );
        assert_eq!(super::binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(super::binary_size(64 << 20), "64MiB");
        assert_eq!(super::binary_size(1000), "1000B");
        assert_eq!(super::si_size3(1234), "1.23kB");
        assert_eq!(super::si_size3(648), "648B");
        assert_eq!(super::parse_rfc3339("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(
            super::parse_rfc3339("2000-02-29T01:00:00.5+01:00"),
            Some(951_782_400)
        );
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
        let t = super::Template::parse("table {{.ID}}\\t{{ .Names }}", &["ID", "Names"]).unwrap();
        assert!(t.table);
        assert_eq!(t.render(&|f: &str| f.to_lowercase()), "id\tnames");
        let t = super::Template::parse("{{.Names}}: {{.ID}}!", &["ID", "Names"]).unwrap();
        assert!(!t.table);
        assert_eq!(t.render(&|f: &str| f.into()), "Names: ID!");
        assert!(super::Template::parse("{{.Nope}}", &["ID"]).is_err());
        assert!(super::Template::parse("{{.ID", &["ID"]).is_err());
    }
}
