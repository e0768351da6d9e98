//! The container's first process lands in its cgroup in every hierarchy, whichever way it got
//! there: born in its cgroup2 cgroup (`clone3` with CLONE_INTO_CGROUP) and moving itself into
//! the v1 ones, or, where a seccomp filter around the runtime refuses `clone3` (docker's
//! default answers ENOSYS, other profiles EPERM), cloned plainly and moved by the runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![cfg(target_arch = "x86_64")]

mod common;

use std::os::unix::process::CommandExt;

use common::{can_run, TestContainer};

const SYS_CLONE3: u32 = 435;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The process's cgroups, as /proc/self/cgroup shows them from the host's cgroup namespace.
fn cgroups_of_a_run(refuse_clone3: Option<i32>) -> (String, String) {
    let mut c = TestContainer::new("placement");
    c.set_args(&["cat", "/proc/self/cgroup"]);
    let namespaces = c.linux()["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "cgroup");
    c.write_config();
    let mut cmd = c.command(&["run", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    if let Some(errno) = refuse_clone3 {
        // SAFETY: between fork and exec this only makes two prctl calls on its own stack data.
        unsafe {
            cmd.pre_exec(move || refuse(errno));
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        c.id.clone(),
    )
}

/// Installs on the calling process a filter that fails `clone3` with `errno`.
fn refuse(errno: i32) -> std::io::Result<()> {
    let ret_errno = 0x0005_0000 | u32::try_from(errno).unwrap();
    let code = |c: u32| u16::try_from(c).unwrap();
    let ld = code(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
    let jeq = code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
    let ret = code(libc::BPF_RET | libc::BPF_K);
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut program = [
        insn(ld, 0, 0, 4), // seccomp_data.arch
        insn(jeq, 0, 3, AUDIT_ARCH_X86_64),
        insn(ld, 0, 0, 0), // seccomp_data.nr
        insn(jeq, 0, 1, SYS_CLONE3),
        insn(ret, 0, 0, ret_errno),
        insn(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).unwrap(),
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl with plain integers, then with a pointer to `prog`, alive for the call.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn the_first_process_is_in_every_cgroup_born_there_or_moved() {
    if !can_run() {
        return;
    }
    for refuse_clone3 in [None, Some(libc::ENOSYS), Some(libc::EPERM)] {
        let (cgroups, id) = cgroups_of_a_run(refuse_clone3);
        let lines: Vec<&str> = cgroups.lines().collect();
        assert!(!lines.is_empty());
        // Every hierarchy the runtime joins: those with a controller, systemd's and cgroup2.
        for line in lines {
            let controllers = line.split(':').nth(1).unwrap();
            let joined = controllers.is_empty()
                || controllers == "name=systemd"
                || !controllers.starts_with("name=");
            if joined {
                assert!(
                    line.ends_with(&format!("/hull-{id}")),
                    "clone3 refused with {refuse_clone3:?}: {line} (all: {cgroups})"
                );
            }
        }
    }
}
