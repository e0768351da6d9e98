//! The allow-list of skips a strict run tolerates: its text format and the matching of a skip
//! reason against it. Pure logic; `lib.rs` reads the file.
//!
//! Format, one entry a line: `PATTERN | WHY`, where PATTERN matches the whole skip reason (`*`
//! stands for any run of characters) and WHY says why this host cannot run the check. Blank lines
//! and lines starting with `#` are ignored.

use std::fmt;

/// One allowed skip: a pattern over the reason, and why the host cannot run the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub pattern: String,
    pub why: String,
}

/// A line of the allow-list that is not `PATTERN | WHY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {:?} is not `PATTERN | WHY` (both non-empty)",
            self.line, self.text
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses the allow-list; a malformed entry is an error rather than ignored, so an entry
/// without its reason cannot slip in.
pub fn parse(text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || ParseError {
            line: i + 1,
            text: line.to_string(),
        };
        // The last `|` splits, so a pattern may itself contain `|`.
        let (pattern, why) = line.rsplit_once('|').ok_or_else(bad)?;
        let (pattern, why) = (pattern.trim(), why.trim());
        if pattern.is_empty() || why.is_empty() || pattern.chars().all(|c| c == '*') {
            return Err(bad());
        }
        entries.push(Entry {
            pattern: pattern.to_string(),
            why: why.to_string(),
        });
    }
    Ok(entries)
}

/// The first entry whose pattern matches `reason`.
pub fn find<'a>(entries: &'a [Entry], reason: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| glob(&e.pattern, reason))
}

/// Whether `pattern` matches all of `text`; `*` matches any run of characters (none included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    // split always yields at least one part.
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_whole_reason() {
        assert!(glob("AppArmor is enabled here", "AppArmor is enabled here"));
        assert!(!glob("AppArmor", "AppArmor is enabled here"));
        assert!(!glob("is enabled here", "AppArmor is enabled here"));
        assert!(glob("AppArmor*", "AppArmor is enabled here"));
        assert!(glob("*enabled here", "AppArmor is enabled here"));
        assert!(glob("*is*here", "AppArmor is enabled here"));
        assert!(glob("a*b*c", "abc"));
        assert!(glob("a**c", "ac"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
        assert!(!glob("", "x"));
        // The tail must not reuse characters the middle consumed.
        assert!(!glob("*aa*aa", "aaa"));
        assert!(glob("*aa*aa", "aaaa"));
        assert!(glob("ab*ab", "abab"));
        assert!(!glob("ab*ab", "aba"));
    }

    #[test]
    fn parse_reads_entries_and_skips_comments() {
        let text = "# header\n\n  no RT * | no CONFIG_RT_GROUP_SCHED here  \nx|y | why\n";
        let entries = parse(text).unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    pattern: "no RT *".into(),
                    why: "no CONFIG_RT_GROUP_SCHED here".into()
                },
                Entry {
                    pattern: "x|y".into(),
                    why: "why".into()
                },
            ]
        );
    }

    #[test]
    fn parse_refuses_entries_without_a_reason() {
        for (text, line) in [
            ("ok | fine\nno reason here\n", 2),
            ("pattern |\n", 1),
            ("| why\n", 1),
            ("* | allows everything\n", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(
                err.to_string().starts_with(&format!("line {line}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn find_returns_the_first_match() {
        let entries =
            parse("needs root | never\nSELinux * | no SELinux\n* enabled here | any\n").unwrap();
        assert_eq!(
            find(&entries, "SELinux is enabled here").unwrap().why,
            "no SELinux"
        );
        assert_eq!(
            find(&entries, "AppArmor is enabled here").unwrap().why,
            "any"
        );
        assert!(find(&entries, "needs root for chown").is_none());
    }
}
