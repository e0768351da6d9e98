//! hull-testkit: what hull's tests share across crates. It owns the skip rule: a test that
//! cannot run its check says `SKIP: reason`; under `HULL_STRICT=1` (CI) that is a failure unless
//! the reason is in the repo's allow-list of things this host cannot do (tests/allowed-skips.txt).

pub mod allow;
pub mod dockerd;
pub mod guest;
pub mod host;
pub mod rootfs;
pub mod tiny_guest;

use std::path::{Path, PathBuf};

/// Whether skips must be allow-listed: `HULL_STRICT` set to anything but empty or `0`.
pub fn strict() -> bool {
    std::env::var_os("HULL_STRICT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Where the allow-list is read from: `HULL_ALLOWED_SKIPS`, else this checkout's (the qemu guest
/// has no checkout, so its harness copies the file in and sets the variable).
pub fn allow_list_path() -> PathBuf {
    std::env::var_os("HULL_ALLOWED_SKIPS").map_or_else(repo_allow_list, PathBuf::from)
}

fn repo_allow_list() -> PathBuf {
    // crates/testkit -> the repo root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .join("tests/allowed-skips.txt")
}

/// Says why a test does not run (all or part of) its check. Under `HULL_STRICT=1` it panics,
/// failing the test, unless the allow-list names the reason. The caller returns afterwards.
pub fn skip(reason: impl std::fmt::Display) {
    let reason = reason.to_string();
    eprintln!("SKIP: {reason}");
    if !strict() {
        return;
    }
    let path = allow_list_path();
    let list = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the allowed skips {}: {e}", path.display()));
    match list.and_then(|text| allowed(&reason, &text, &path.display().to_string())) {
        Ok(why) => eprintln!("SKIP allowed here: {why}"),
        Err(e) => panic!("HULL_STRICT=1: {e}"),
    }
}

/// Why the allow-list `text` (read from `path`) lets `reason` pass, or what is wrong.
fn allowed(reason: &str, text: &str, path: &str) -> Result<String, String> {
    let entries = allow::parse(text).map_err(|e| format!("{path}: {e}"))?;
    match allow::find(&entries, reason) {
        Some(entry) => Ok(entry.why.clone()),
        None => Err(format!(
            "skip not allowed on this host: {reason} (make the host able to run it, e.g. in \
             scripts/deps.sh, or list it with why in {path})"
        )),
    }
}

/// [`skip`] with `format!` arguments, then `return` from the calling test.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)+) => {{
        $crate::skip(::std::format!($($arg)+));
        return;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_verdicts() {
        let list = "# allowed\nno CONFIG_RT_GROUP_SCHED* | the kernel has no RT group scheduling\n";
        assert_eq!(
            allowed(
                "no CONFIG_RT_GROUP_SCHED, realtime fields not checked",
                list,
                "f"
            )
            .unwrap(),
            "the kernel has no RT group scheduling"
        );
        let err = allowed("needs root", list, "f").unwrap_err();
        assert!(
            err.starts_with("skip not allowed on this host: needs root ("),
            "{err}"
        );
        let err = allowed("x", "broken line\n", "f").unwrap_err();
        assert!(err.starts_with("f: line 1: "), "{err}");
    }

    /// The repo's own list parses, and lists no skip that a root CI run must never take.
    #[test]
    fn repo_allow_list_is_well_formed() {
        let text = std::fs::read_to_string(repo_allow_list()).unwrap();
        let entries = allow::parse(&text).unwrap();
        assert!(!entries.is_empty());
        for reason in [
            "needs root",
            "the runtime tests need root",
            "cgroup tests need root",
        ] {
            assert!(
                allow::find(&entries, reason).is_none(),
                "{reason} is allowed"
            );
        }
    }
}
