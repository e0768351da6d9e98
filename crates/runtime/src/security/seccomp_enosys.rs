//! The -ENOSYS prologue runc puts before libseccomp's filter: a syscall numbered above every
//! syscall the profile names (for its architecture) is newer than the profile, so it gets
//! ENOSYS (which libcs answer by falling back to an older call) rather than the default
//! action (EPERM would be taken as a real refusal). Only when the default action refuses.

use std::collections::BTreeMap;

use libseccomp::{ScmpArch, ScmpSyscall};

use super::cbpf::{insn as bpf, JA, JEQ_K, JGT_K, JSET_K, LD_W_ABS, OFFSET_ARCH, OFFSET_NR, RET_K};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// The audit arch value the kernel puts in seccomp_data.arch; x32 shares x86-64's and is told
/// apart by the syscall number bit. Architectures left out get no prologue (libseccomp's
/// default action applies to their new syscalls).
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    Some(match arch {
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Riscv64 => 0xc000_00f3,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::S390X => 0x8000_0016,
        _ => return None,
    })
}

/// The highest syscall number the profile names, per architecture of the filter.
#[derive(Debug, Default)]
pub(super) struct LastSyscalls {
    last: BTreeMap<u32, (Option<u32>, Option<u32>)>, // audit arch -> (plain, x32)
    /// Every x32 syscall gets ENOSYS: the filter has no x32 section (`seccomp_x32`).
    x32_refused: bool,
}

impl LastSyscalls {
    pub(super) fn new(archs: &[ScmpArch]) -> Self {
        let mut last = BTreeMap::new();
        for a in archs {
            if let Some(audit) = audit_arch(*a) {
                last.entry(audit).or_insert((None, None));
            }
        }
        Self {
            last,
            x32_refused: false,
        }
    }

    /// Answers every x32 syscall ENOSYS, before libseccomp's program (which has no x32
    /// section then, and would take them for a bad architecture).
    pub(super) fn refuse_x32(&mut self) {
        self.last.entry(AUDIT_ARCH_X86_64).or_insert((None, None));
        self.x32_refused = true;
    }

    /// Counts `name` for every architecture of the filter (pseudo-numbers are skipped).
    pub(super) fn note(&mut self, name: &str, archs: &[ScmpArch]) {
        for a in archs {
            let (Some(audit), Ok(sys)) = (audit_arch(*a), ScmpSyscall::from_name_by_arch(name, *a))
            else {
                continue;
            };
            let Ok(nr) = u32::try_from(sys.as_raw_syscall()) else {
                continue;
            };
            let Some(slot) = self.last.get_mut(&audit) else {
                continue;
            };
            let (plain, x32) = slot;
            let (target, nr) = if *a == ScmpArch::X32 {
                (x32, nr | X32_SYSCALL_BIT)
            } else {
                (plain, nr)
            };
            *target = Some(target.map_or(nr, |m| m.max(nr)));
        }
    }

    /// The prologue to put before libseccomp's program (empty when nothing is known).
    pub(super) fn prologue(&self) -> Vec<libc::sock_filter> {
        let mut asm = Asm::default();
        for (&audit, &(plain, x32)) in &self.last {
            let x32_refused = self.x32_refused && audit == AUDIT_ARCH_X86_64;
            if plain.is_none() && x32.is_none() && !x32_refused {
                continue;
            }
            let next = asm.label();
            asm.jump(JEQ_K, audit, Target::Next, Target::Label(next));
            asm.stmt(LD_W_ABS, OFFSET_NR);
            if x32_refused {
                asm.jump(JSET_K, X32_SYSCALL_BIT, Target::Enosys, Target::Next);
                asm.limit(plain);
            } else if audit == AUDIT_ARCH_X86_64 {
                let x32_part = asm.label();
                asm.jump(
                    JSET_K,
                    X32_SYSCALL_BIT,
                    Target::Label(x32_part),
                    Target::Next,
                );
                asm.limit(plain);
                asm.bind(x32_part);
                asm.limit(x32);
            } else {
                asm.limit(plain);
            }
            asm.bind(next);
        }
        if asm.code.is_empty() {
            return Vec::new();
        }
        asm.finish()
    }
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
    Enosys,
    Filter,
}

/// A tiny BPF assembler with forward labels; the program starts by loading the arch.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, Target, Target, u32)>,
    labels: Vec<usize>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = self.code.len() + 1; // +1: the arch load comes first
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }

    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.code.push((code, jt, jf, k));
    }

    /// ENOSYS above `last`, then on to libseccomp's program.
    fn limit(&mut self, last: Option<u32>) {
        if let Some(last) = last {
            self.jump(JGT_K, last, Target::Enosys, Target::Filter);
        } else {
            self.code.push((JA, Target::Next, Target::Next, u32::MAX)); // patched to Filter
        }
    }

    fn finish(self) -> Vec<libc::sock_filter> {
        // Layout: [ld arch] code... [ja filter] [ret ENOSYS] <libseccomp program>
        let body = self.code.len() + 1;
        let (fallthrough, enosys, filter) = (body, body + 1, body + 2);
        let offset = |at: usize, t: Target| -> u8 {
            let dest = match t {
                Target::Next => at + 1,
                Target::Label(l) => self.labels[l],
                Target::Enosys => enosys,
                Target::Filter => filter,
            };
            // The prologue is a few instructions per architecture, far below 255.
            u8::try_from(dest - at - 1).unwrap_or(u8::MAX)
        };
        let mut out = vec![bpf(LD_W_ABS, 0, 0, OFFSET_ARCH)];
        for (i, &(code, jt, jf, k)) in self.code.iter().enumerate() {
            let at = i + 1;
            if code == JA {
                let k = u32::try_from(filter - at - 1).unwrap_or(0);
                out.push(bpf(JA, 0, 0, k));
            } else {
                out.push(bpf(code, offset(at, jt), offset(at, jf), k));
            }
        }
        debug_assert_eq!(out.len(), fallthrough);
        out.push(bpf(JA, 0, 0, 1));
        let enosys = SECCOMP_RET_ERRNO | u32::try_from(libc::ENOSYS).unwrap_or(38);
        out.push(bpf(RET_K, 0, 0, enosys));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the prologue on (arch, nr): Some(return value) or None for "into libseccomp's".
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while pc < prog.len() {
            let i = prog[pc];
            let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            pc += 1 + match i.code {
                LD_W_ABS => {
                    acc = if i.k == OFFSET_ARCH { arch } else { nr };
                    0
                }
                JEQ_K => jump(acc == i.k),
                JGT_K => jump(acc > i.k),
                JSET_K => jump(acc & i.k != 0),
                JA => usize::try_from(i.k).expect("offset"),
                RET_K => return Some(i.k),
                other => panic!("unexpected opcode {other:#x}"),
            };
        }
        assert_eq!(pc, prog.len(), "jumped past the end");
        None
    }

    #[test]
    fn prologue_limits_each_arch_and_x32_apart() {
        let archs = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];
        let mut last = LastSyscalls::new(&archs);
        last.note("read", &archs);
        last.note("mkdirat", &archs);
        let prog = last.prologue();
        let enosys = Some(SECCOMP_RET_ERRNO | 38);
        let nr = |a| {
            u32::try_from(
                ScmpSyscall::from_name_by_arch("mkdirat", a)
                    .expect("nr")
                    .as_raw_syscall(),
            )
            .expect("positive")
        };
        let (x64, x86) = (nr(ScmpArch::X8664), nr(ScmpArch::X86));
        let x32 = nr(ScmpArch::X32) | X32_SYSCALL_BIT;
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x64), None);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x64 + 1), enosys);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x32), None);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x32 + 1), enosys);
        assert_eq!(eval(&prog, 0x4000_0003, x86), None);
        assert_eq!(eval(&prog, 0x4000_0003, x86 + 1), enosys);
        // An arch outside the filter is libseccomp's to judge.
        assert_eq!(eval(&prog, 0xc000_00b7, 5000), None);
    }

    #[test]
    fn refused_x32_gets_enosys_before_the_filter() {
        let archs = [ScmpArch::X8664, ScmpArch::X86];
        let enosys = Some(SECCOMP_RET_ERRNO | 38);
        let mut last = LastSyscalls::new(&archs);
        last.note("read", &archs);
        last.refuse_x32();
        let prog = last.prologue();
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 0), None);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT), enosys);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 39), enosys);
        assert_eq!(eval(&prog, 0x4000_0003, 3), None);
        // Also with no x86-64 syscall named at all.
        let mut bare = LastSyscalls::new(&[ScmpArch::X8664]);
        bare.refuse_x32();
        let prog = bare.prologue();
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 39), enosys);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 39), None);
    }

    #[test]
    fn nothing_named_means_no_prologue() {
        assert!(LastSyscalls::new(&[ScmpArch::X8664]).prologue().is_empty());
    }
}
