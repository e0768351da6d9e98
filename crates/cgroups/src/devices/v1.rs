//! cgroup v1 devices controller. The kernel keeps a default (allow or deny everything) plus a list
//! of exceptions, and a rule of the opposite action only removes an exception with the very same
//! type:major:minor. So the OCI rules (last match wins) are first simulated: a rule the kernel would
//! silently not enforce (denying one device inside an earlier wildcard allow, or the reverse) is an
//! error, and an update moves from the current exceptions to the new ones without a moment where a
//! device allowed before and after is denied.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::{Rule, ACC_ALL};
use crate::error::CgroupError;
use crate::fs;

/// The state the kernel ends in: the default, and the exceptions to it (merged per device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub allow_all: bool,
    pub exceptions: Vec<Rule>,
}

/// v1's "a" cannot carry an access subset: such a rule means both device kinds.
fn expand(r: &Rule) -> Vec<Rule> {
    if r.kind == 'a' && r.access != ACC_ALL {
        vec![Rule { kind: 'b', ..*r }, Rule { kind: 'c', ..*r }]
    } else {
        vec![*r]
    }
}

fn same_device(a: &Rule, b: &Rule) -> bool {
    a.kind == b.kind && a.major == b.major && a.minor == b.minor
}

/// Whether `wide` matches every device `narrow` matches.
fn covers(wide: &Rule, narrow: &Rule) -> bool {
    (wide.kind == 'a' || wide.kind == narrow.kind)
        && (wide.major.is_none() || wide.major == narrow.major)
        && (wide.minor.is_none() || wide.minor == narrow.minor)
}

/// Simulates the kernel for `rules` (after the implicit deny-all); errors name the rule index.
pub(crate) fn simulate(rules: &[Rule]) -> Result<State, CgroupError> {
    let mut st = State {
        allow_all: false,
        exceptions: Vec::new(),
    };
    for (i, orig) in rules.iter().enumerate() {
        for r in expand(orig) {
            if r.kind == 'a' {
                st = State {
                    allow_all: r.allow,
                    exceptions: Vec::new(),
                };
                continue;
            }
            if r.allow != st.allow_all {
                match st.exceptions.iter_mut().find(|e| same_device(e, &r)) {
                    Some(e) => e.access |= r.access,
                    None => st.exceptions.push(Rule {
                        allow: !st.allow_all,
                        ..r
                    }),
                }
                continue;
            }
            if let Some(wide) = st
                .exceptions
                .iter()
                .find(|e| !same_device(e, &r) && covers(e, &r) && e.access & r.access != 0)
            {
                return Err(CgroupError::invalid(
                    format!("linux.resources.devices[{i}]"),
                    format!(
                        "cgroup v1 cannot {} {:?} inside the earlier rule {:?} (it only removes identical entries); narrow the earlier rule",
                        if r.allow { "allow" } else { "deny" },
                        r.v1_string(),
                        wide.v1_string()
                    ),
                ));
            }
            for e in st.exceptions.iter_mut().filter(|e| same_device(e, &r)) {
                e.access &= !r.access;
            }
            st.exceptions.retain(|e| e.access != 0);
        }
    }
    Ok(st)
}

/// Parses devices.list: "a *:* rwm" alone means allow-all; otherwise the allowed exceptions.
fn current(dir: &Path) -> Result<Option<State>, CgroupError> {
    let path = dir.join("devices.list");
    let text = fs::read(&path)?;
    let mut exceptions = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let parsed = (|| {
            let kind = f.first()?.chars().next()?;
            let (ma, mi) = f.get(1)?.split_once(':')?;
            let num = |s: &str| {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            let mut access = 0;
            for c in f.get(2)?.chars() {
                access |= match c {
                    'r' => super::ACC_READ,
                    'w' => super::ACC_WRITE,
                    'm' => super::ACC_MKNOD,
                    _ => return None,
                };
            }
            Some(Rule {
                allow: true,
                kind,
                major: num(ma)?,
                minor: num(mi)?,
                access,
            })
        })();
        let Some(r) = parsed else {
            return Err(CgroupError::Parse {
                path,
                reason: format!("unexpected line {l:?}"),
            });
        };
        if r.kind == 'a' {
            return Ok(None);
        }
        exceptions.push(r);
    }
    Ok(Some(State {
        allow_all: false,
        exceptions,
    }))
}

/// devices.allow and devices.deny of one cgroup, each opened once for all the rules written to
/// it: the kernel takes every write(2) as one rule, so a descriptor serves them all (a new
/// cgroup gets a dozen rules, an open and close each otherwise).
struct RuleFiles<'a> {
    dir: &'a Path,
    allow: Option<File>,
    deny: Option<File>,
}

impl RuleFiles<'_> {
    fn write(&mut self, allow: bool, value: &str) -> Result<(), CgroupError> {
        let (slot, name) = if allow {
            (&mut self.allow, "devices.allow")
        } else {
            (&mut self.deny, "devices.deny")
        };
        let path = || self.dir.join(name);
        let fail = |source| CgroupError::Write {
            path: path(),
            value: value.to_string(),
            source,
        };
        let file = match slot {
            Some(f) => f,
            None => slot.insert(OpenOptions::new().write(true).open(path()).map_err(fail)?),
        };
        file.write_all(value.as_bytes()).map_err(fail)
    }

    fn rule(&mut self, allow: bool, r: &Rule) -> Result<(), CgroupError> {
        self.write(allow, &r.v1_string())
    }
}

/// Applies `rules` (already checked by `simulate`). On a new cgroup, or when either side is in
/// allow-all mode, the rules are replayed from deny-all; otherwise only the difference is written,
/// allowing new devices before revoking old ones.
pub(crate) fn apply(dir: &Path, rules: &[Rule], update: bool) -> Result<(), CgroupError> {
    let target = simulate(rules)?;
    let mut files = RuleFiles {
        dir,
        allow: None,
        deny: None,
    };
    if update && !target.allow_all {
        if let Some(cur) = current(dir)? {
            for e in &target.exceptions {
                files.rule(true, e)?;
            }
            for c in &cur.exceptions {
                let keep = target
                    .exceptions
                    .iter()
                    .find(|e| same_device(e, c))
                    .map_or(0, |e| e.access);
                let revoke = c.access & !keep;
                if revoke != 0 {
                    files.rule(
                        false,
                        &Rule {
                            access: revoke,
                            ..*c
                        },
                    )?;
                }
            }
            return Ok(());
        }
    }
    files.write(false, "a")?;
    for orig in rules {
        for r in expand(orig) {
            if r.kind == 'a' {
                files.write(r.allow, "a")?;
            } else {
                files.rule(r.allow, &r)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(allow: bool, kind: char, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn defaults_simulate_to_their_exceptions() {
        let rules = [
            r(false, 'a', None, None, ACC_ALL),
            r(true, 'c', None, None, 1),
            r(true, 'c', Some(1), Some(3), ACC_ALL),
            r(false, 'c', Some(1), Some(3), 4),
        ];
        let st = simulate(&rules).unwrap();
        assert!(!st.allow_all);
        assert_eq!(st.exceptions.len(), 2);
        assert_eq!(st.exceptions[1].v1_string(), "c 1:3 rm");
    }

    #[test]
    fn hole_in_a_wildcard_is_refused() {
        let rules = [
            r(true, 'c', None, None, ACC_ALL),
            r(false, 'c', Some(1), Some(5), ACC_ALL),
        ];
        let e = simulate(&rules).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.resources.devices[1]: cgroup v1 cannot deny"),
            "{e}"
        );
        // In allow-all mode a deny is an exception, which v1 expresses fine.
        let ok = [
            r(true, 'a', None, None, ACC_ALL),
            r(false, 'c', Some(1), Some(5), ACC_ALL),
        ];
        assert!(simulate(&ok).unwrap().allow_all);
    }
}
