//! `hull vm run` as a user runs it on this host: the clear one-line errors before any guest
//! runs. Booting a stock kernel is tested in the nested test bed (crates/vmm/tests/nested).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use hull_vmm::{host_kvm, HostKvm};

fn hull(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hull"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refuses_what_it_cannot_boot() {
    let (rc, err) = hull(&["vm", "run", "--kernel", "/nonexistent/vmlinux"]);
    // hull failing to run the VM is docker's 125, apart from any command's own codes.
    assert_eq!(rc, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    match host_kvm() {
        HostKvm::Missing => assert!(err.contains("/dev/kvm is missing"), "{err}"),
        HostKvm::Pvm => {
            assert!(err.contains("kvm-pvm"), "{err}");
            assert!(err.contains("crates/vmm/tests/nested/run.sh"), "{err}");
        }
        HostKvm::Hardware => assert!(err.contains("cannot open /nonexistent/vmlinux"), "{err}"),
    }
}

#[test]
fn bad_sizes_are_refused() {
    let (rc, err) = hull(&["vm", "run", "--kernel", "k", "--mem", "lots"]);
    // A usage error is docker's 125, as for every hull command.
    assert_eq!(rc, 125, "{err}");
    assert!(err.contains("\"lots\" is not a size"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn command_flags_are_checked_before_any_vm() {
    let cases: [(&[&str], &str); 5] = [
        (&["--", "true"], "a command needs --initrd"),
        (&["-i"], "are for a command"),
        (
            &["--initrd", "i", "--disk", "r.img:rx", "--", "true"],
            "unknown option \"rx\"",
        ),
        (
            &["--initrd", "i", "-u", "nobody", "--", "true"],
            "UID[:GID] as numbers",
        ),
        (
            &["--initrd", "i", "-e", "NOVALUE", "--", "true"],
            "NAME=value",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["vm", "run", "--kernel", "k"];
        all.extend_from_slice(args);
        let (rc, err) = hull(&all);
        assert_eq!(rc, 125, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}
