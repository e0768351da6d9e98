//! Leaving x32 out of a filter for a kernel that refuses x32 syscalls anyway.
//!
//! x32 (the x86-64 ABI with 32-bit pointers: syscall numbers with bit 30 set, under x86-64's
//! audit arch) is the largest part of a filter that lists it, as docker's and podman's default
//! profiles do: libseccomp's program for hull's default profile is 1437 instructions with x32
//! and 474 without (podman's: 1437 and 1010), which the kernel checks, converts and JITs at
//! every container's start (0.22 against 0.09 ms here).
//! Most kernels are built without x32 (this host's, Fedora's, Ubuntu's) or run it only when
//! booted with syscall.x32=y, and answer every x32 syscall the filter lets through with ENOSYS.
//! For a profile that refuses by default with an errno and otherwise only allows or refuses
//! with an errno, the x32 section can then only choose which errno an x32 call gets: it is left
//! out, and the filter's prologue (`seccomp_enosys`) answers every x32 syscall ENOSYS itself,
//! what the kernel answers those the profile allows. A profile that kills, traps, traces, logs
//! or notifies keeps its x32 section, as does a filter for another kernel (a microVM's).

use nix::errno::Errno;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

/// Whether the filter of `s`, for this kernel, leaves x32 out.
pub(super) fn left_out(s: &LinuxSeccomp) -> bool {
    refuses_with_errno_only(s) && !kernel_runs_x32()
}

/// The default action refuses with an errno, and every rule allows or refuses with one.
fn refuses_with_errno_only(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActErrno
        && s.syscalls().iter().flatten().all(|rule| {
            matches!(
                rule.action(),
                LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActErrno
            )
        })
}

/// Whether this kernel runs x32 syscalls; true where that cannot be told safely.
pub(super) fn kernel_runs_x32() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return true;
    }
    // Under a filter (a runtime in a container) the probe could be killed by libseccomp's
    // bad-arch action, or answered by the filter instead of the kernel.
    // SAFETY: PR_GET_SECCOMP only reads this thread's seccomp mode.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } != 0 {
        return true;
    }
    // SAFETY: getpid through the x32 entry takes no argument and touches no memory.
    let rc = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
    !(rc == -1 && Errno::last() == Errno::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_an_errno_profile_may_leave_x32_out() {
        let allow = json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"});
        let errno = json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38});
        let ok = profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [allow, errno]}));
        assert!(refuses_with_errno_only(&ok));
        for (default, action) in [
            ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"),
            ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL"),
            ("SCMP_ACT_ERRNO", "SCMP_ACT_LOG"),
            ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"),
            ("SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ALLOW"),
        ] {
            let p = profile(json!({"defaultAction": default,
                "syscalls": [{"names": ["read"], "action": action}]}));
            assert!(!refuses_with_errno_only(&p), "{default} {action}");
        }
    }
}
