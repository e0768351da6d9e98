//! hugepageLimits enforced: a process touching more huge pages than its cgroup allows gets SIGBUS.
//! On a hybrid host hugetlb may exist only on the cgroup2 mount, and the limit must land there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{res, skip_unless_root, CgGuard};
use hull_cgroups::Layout;
use serde_json::json;

const HUGE: usize = 2 << 20;

/// Set in the qemu guest, whose cgroup roots and sysctls belong to the test alone.
fn own_host() -> bool {
    std::env::var_os("HULL_CGTEST_OWN_HOST").is_some()
}

fn hugetlb_usable() -> Result<(), String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = mounts
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.contains("hugetlb"));
    if !v1 && !own_host() {
        // Delegating hugetlb on the cgroup2 side writes the root's cgroup.subtree_control, which a
        // test on a shared machine must not do; the qemu guest run covers this path.
        return Err("hugetlb is only on the cgroup2 mount here and enabling it would write the host's root cgroup.subtree_control (covered by crates/cgroups/tests/qemu/run.sh)".into());
    }
    let total = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("HugePages_Total:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    if total(&std::fs::read_to_string("/proc/meminfo").unwrap()) < 4 && own_host() {
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", "8");
    }
    if total(&std::fs::read_to_string("/proc/meminfo").unwrap()) < 4 {
        return Err(
            "fewer than 4 free 2 MiB huge pages (vm.nr_hugepages is a host-wide setting)".into(),
        );
    }
    Ok(())
}

/// Forks a child that maps and touches `pages` huge pages; returns the signal that killed it, if any.
fn touch_in_child(cg: &hull_cgroups::Cgroup, pages: usize) -> Option<i32> {
    let (go_r, go_w) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only makes raw syscalls (read, mmap, stores into the mapping, _exit).
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&go_r, &mut b);
            // SAFETY: anonymous private mapping, no address hint; checked for MAP_FAILED below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    pages * HUGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                // SAFETY: _exit is always safe in a forked child.
                unsafe { libc::_exit(2) };
            }
            for i in 0..pages {
                // SAFETY: i * HUGE is inside the mapping of pages * HUGE bytes.
                unsafe { p.cast::<u8>().add(i * HUGE).write_volatile(1) };
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(go_r);
            cg.add_process(child.as_raw()).unwrap();
            nix::unistd::write(&go_w, b"g").unwrap();
            match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Signaled(_, sig, _) => Some(sig as i32),
                nix::sys::wait::WaitStatus::Exited(_, 0) => None,
                other => panic!("hugetlb child: {other:?}"),
            }
        }
    }
}

#[test]
fn hugepage_limit_is_enforced_where_hugetlb_lives() {
    if skip_unless_root() {
        return;
    }
    if let Err(why) = hugetlb_usable() {
        hull_testkit::skip!("{why}");
    }
    let r = res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * HUGE}]}));
    let cg = CgGuard::create("hugetlb", Some(&r));
    // The limit file is in the hierarchy that hosts hugetlb (cgroup2 on a hybrid host here).
    let host =
        cg.0.hierarchies()
            .into_iter()
            .find(|h| {
                h.path.join("hugetlb.2MB.max").exists()
                    || h.path.join("hugetlb.2MB.limit_in_bytes").exists()
            })
            .expect("a hugetlb limit file");
    if cg.0.layout() == Layout::Hybrid && !host.controllers.iter().any(|c| c == "hugetlb") {
        assert_eq!(host.version, 2);
    }
    assert_eq!(
        touch_in_child(&cg.0, 2),
        None,
        "two pages are within the limit"
    );
    assert_eq!(
        touch_in_child(&cg.0, 3),
        Some(libc::SIGBUS),
        "the third page must fault"
    );
    let st = cg.0.stats().unwrap();
    assert!(st.hugetlb["2MB"].failcnt > 0, "{:?}", st.hugetlb);
    cg.finish();
}
