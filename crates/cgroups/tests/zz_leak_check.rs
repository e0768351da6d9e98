//! Runs after the other test binaries (cargo runs them in name order): nothing the suite created
//! may remain: no hull-cgtest-* cgroup in any hierarchy, loop device or temp file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

fn find(dir: &Path, depth: u32, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().starts_with(common::PREFIX) {
            out.push(e.path().display().to_string());
        }
        if depth > 0 {
            find(&e.path(), depth - 1, out);
        }
    }
}

#[test]
fn nothing_left_behind() {
    if common::skip_unless_root() {
        return;
    }
    let mut leaks = Vec::new();
    let mi = hull_sys::mountinfo::read_self().unwrap();
    for m in hull_sys::mountinfo::parse(&mi).map(Result::unwrap) {
        if matches!(m.fs_type, "cgroup" | "cgroup2") {
            // Our dirs sit a few levels down at most (memory is under /process_api/<hash> here).
            find(&m.mount_point(), 3, &mut leaks);
        }
    }
    let tmp = std::env::temp_dir();
    for e in std::fs::read_dir(&tmp).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(common::PREFIX) {
            leaks.push(e.path().display().to_string());
        }
    }
    let loops = std::process::Command::new("losetup").arg("-a").output();
    if let Ok(o) = loops {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.contains(common::PREFIX) {
                leaks.push(l.to_string());
            }
        }
    }
    assert!(leaks.is_empty(), "left behind: {leaks:#?}");
}
