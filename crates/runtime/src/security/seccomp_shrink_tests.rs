use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

use super::super::cbpf::{run, SeccompData};
use super::super::seccomp::assemble;
use super::*;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xc000_00b7;
const X32_BIT: u32 = 0x4000_0000;

/// A profile shaped as docker's default: a long allow list over x86-64, x86 and x32, the
/// rest refused with EPERM, and rules that look at arguments (personality's values, clone's
/// namespace flags, socket's family) beside plain ones.
fn docker_like() -> LinuxSeccomp {
    let refused = [
        "mount",
        "umount2",
        "ptrace",
        "reboot",
        "kexec_load",
        "init_module",
        "finit_module",
        "delete_module",
        "swapon",
        "swapoff",
        "acct",
        "settimeofday",
        "clock_settime",
        "pivot_root",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "quotactl",
        "open_by_handle_at",
        "name_to_handle_at",
        "clone",
        "clone3",
        "personality",
        "socket",
        "iopl",
        "ioperm",
        "create_module",
        "lookup_dcookie",
        "move_pages",
        "nfsservctl",
        "vm86",
        "vm86old",
        "syslog",
    ];
    let names: Vec<String> = (0..460)
        .filter_map(|nr| {
            libseccomp::ScmpSyscall::from(nr)
                .get_name_by_arch(libseccomp::ScmpArch::X8664)
                .ok()
        })
        .chain(
            [
                "socketcall",
                "ipc",
                "mmap2",
                "fstat64",
                "waitpid",
                "_llseek",
            ]
            .map(String::from),
        )
        .filter(|n| !refused.contains(&n.as_str()))
        .collect();
    serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu32, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7e02_0000u32, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
            {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
        ]
    }))
    .expect("profile")
}

/// Argument vectors that take each rule's either way, and some noise.
fn arg_sets() -> Vec<[u64; 6]> {
    let mut sets = vec![
        [0; 6],
        [8, 0, 0, 0, 0, 0],
        [0xffff_ffff; 6],
        [40, 1, 0, 0, 0, 0],
    ];
    sets.extend([0x0002_0000, 0x1000_0000, 0x11, 0x7e02_0000, 2].map(|a| [a, 0, 0, 0, 0, 0]));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        let mut v = [0; 6];
        for a in &mut v {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *a = seed;
        }
        sets.push(v);
    }
    sets
}

fn assert_same_decisions(before: &[libc::sock_filter], after: &[libc::sock_filter]) {
    let numbers: Vec<u32> = (0..1100)
        .chain((0..600).map(|n| n | X32_BIT))
        .chain([
            0x7fff_ffff,
            0x8000_0000,
            0xbfff_ffff,
            0xc000_0000,
            u32::MAX - 1,
            u32::MAX,
        ])
        .collect();
    let args = arg_sets();
    for arch in [X86_64, I386, AARCH64, 0, u32::MAX] {
        for &nr in &numbers {
            for a in &args {
                let data = SeccompData {
                    nr,
                    arch,
                    ip: 0x40_1000,
                    args: *a,
                };
                assert_eq!(
                    run(before, &data),
                    run(after, &data),
                    "arch {arch:#x} nr {nr:#x} args {a:x?}"
                );
            }
        }
    }
}

#[test]
fn a_docker_like_filter_shrinks_to_a_quarter_and_decides_the_same() {
    let profile = docker_like();
    let before = assemble(&profile, false).expect("compiles").filter;
    let after = shrink(&before).expect("shrinks");
    assert!(
        after.len() * 3 < before.len(),
        "{} instructions, libseccomp's {}",
        after.len(),
        before.len()
    );
    assert_same_decisions(&before, &after);
}

#[test]
fn a_filter_without_x32_and_one_with_allow_as_default_shrink_too() {
    let mut profile = docker_like();
    let before = assemble(&profile, true).expect("compiles").filter;
    let after = shrink(&before).expect("shrinks");
    assert_same_decisions(&before, &after);
    // An allow-by-default profile has no ENOSYS prologue; its few refusals still dispatch.
    profile.set_default_action(oci_spec::runtime::LinuxSeccompAction::ScmpActAllow);
    profile.set_default_errno_ret(None);
    let before = assemble(&profile, false).expect("compiles").filter;
    if let Some(after) = shrink(&before) {
        assert_same_decisions(&before, &after);
    }
}

#[test]
fn what_it_does_not_understand_is_left_alone() {
    let allow = insn(RET_K, 0, 0, 0x7fff_0000);
    // Already one instruction: nothing shorter.
    assert!(shrink(&[allow]).is_none());
    // The dispatch does arithmetic on the number (ALU AND): not a plain comparison.
    let prog = [
        insn(LD_W_ABS, 0, 0, OFFSET_NR),
        insn(0x54, 0, 0, 0xff),
        insn(JEQ_K, 0, 1, 3),
        allow,
        insn(RET_K, 0, 0, 0),
    ];
    assert!(shrink(&prog).is_none());
    // A comparison with X.
    let prog = [
        insn(LD_W_ABS, 0, 0, OFFSET_NR),
        insn(0x1d, 0, 1, 0),
        allow,
        insn(RET_K, 0, 0, 0),
    ];
    assert!(shrink(&prog).is_none());
    // A jump past the end.
    assert!(shrink(&[insn(LD_W_ABS, 0, 0, OFFSET_NR), insn(JEQ_K, 9, 0, 1)]).is_none());
}

#[test]
fn runs_of_numbers_become_one_comparison_each() {
    // nr 0..=99 allowed one by one, the rest refused: one run, two exits.
    let mut prog = vec![insn(LD_W_ABS, 0, 0, OFFSET_NR)];
    for nr in 0..100u32 {
        let left = u8::try_from(100 - nr).expect("short");
        prog.push(insn(JEQ_K, left, 0, nr));
    }
    prog.push(insn(RET_K, 0, 0, 0x0005_0001));
    prog.push(insn(RET_K, 0, 0, 0x7fff_0000));
    let after = shrink(&prog).expect("shrinks");
    assert!(after.len() <= 6, "{after:?}");
    assert_same_decisions(&prog, &after);
}
