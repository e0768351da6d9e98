//! The cgroup v2 device filter (eBPF) on this kernel. Needs a cgroup2 mount; on a hybrid host it
//! is attached to a dir on the cgroup2 mount, where the kernel runs it in addition to v1 rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;

use common::{skip_unless_root, Sh};
use hull_cgroups::devices::{bpf, check_rule, default_device_rules, Rule};
use serde_json::json;

fn own_v2_dir() -> Option<PathBuf> {
    let mi = hull_sys::mountinfo::read_self().ok()?;
    let mp = hull_sys::mountinfo::parse(&mi)
        .filter_map(Result::ok)
        .find(|m| m.fs_type == "cgroup2")?
        .mount_point()
        .into_owned();
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mp.join(rel.trim_start_matches('/')))
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn rules(extra: serde_json::Value) -> Vec<Rule> {
    let mut r = default_device_rules();
    r.extend(serde_json::from_value::<Vec<_>>(extra).unwrap());
    r.iter()
        .enumerate()
        .map(|(i, d)| check_rule(&format!("r[{i}]"), d).unwrap())
        .collect()
}

fn probe(dir: &std::path::Path) -> Vec<String> {
    let mut sh = Sh::spawn(
        "for d in null zero urandom full; do \
           (: < /dev/$d) 2>&- && echo $d-r || echo $d-no; done; \
         (echo x > /dev/null) 2>&-; echo null-w-$?",
    );
    std::fs::write(dir.join("cgroup.procs"), sh.pid().to_string()).unwrap();
    sh.go();
    let out = sh.rest();
    sh.wait();
    out.lines().map(str::to_string).collect()
}

#[test]
fn bpf_device_filter_denies_and_allows_and_replaces() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let Some(base) = own_v2_dir() else {
        hull_testkit::skip!("no cgroup2 mount");
    };
    let dir = Dir(base.join(format!("{}{}-bpf", common::PREFIX, std::process::id())));
    std::fs::create_dir(&dir.0).unwrap();
    // Defaults allow null/zero/urandom/full; then deny zero entirely and deny writes to null.
    let first = rules(json!([
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
    ]));
    bpf::apply(&dir.0, &first).unwrap();
    assert_eq!(
        probe(&dir.0),
        ["null-r", "zero-no", "urandom-r", "full-r", "null-w-1"]
    );
    // An update replaces the program: zero allowed again, urandom now denied.
    let second =
        rules(json!([{"allow": false, "type": "c", "major": 1, "minor": 9, "access": "r"}]));
    bpf::apply(&dir.0, &second).unwrap();
    assert_eq!(
        probe(&dir.0),
        ["null-r", "zero-r", "urandom-no", "full-r", "null-w-0"]
    );
}
