//! cgroup v2 devices: compiles rules into a BPF_PROG_TYPE_CGROUP_DEVICE program (as runc and crun
//! do) and attaches it to the container's cgroup, replacing the programs it attached before.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, where
//! access_type = (access << 16) | type; it tries the rules last to first (the last match wins) and
//! denies what no rule matches.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::{Rule, ACC_ALL};
use crate::error::CgroupError;
use crate::sys;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// Registers: r1 = ctx on entry; r2 = type, r3 = access, r4 = major, r5 = minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let off = u64::from(u16::from_ne_bytes(off.to_ne_bytes()));
    let imm = u64::from(u32::from_ne_bytes(imm.to_ne_bytes()));
    u64::from(code) | (u64::from(dst | (src << 4)) << 8) | (off << 16) | (imm << 32)
}

fn ldx_w(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x61, dst, src, off, 0) // BPF_LDX | BPF_MEM | BPF_W
}
fn and32(dst: u8, imm: i32) -> u64 {
    insn(0x54, dst, 0, 0, imm) // BPF_ALU | BPF_AND | BPF_K
}
fn rsh32(dst: u8, imm: i32) -> u64 {
    insn(0x74, dst, 0, 0, imm) // BPF_ALU | BPF_RSH | BPF_K
}
fn mov32_reg(dst: u8, src: u8) -> u64 {
    insn(0xbc, dst, src, 0, 0) // BPF_ALU | BPF_MOV | BPF_X
}
fn mov64_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm) // BPF_ALU64 | BPF_MOV | BPF_K
}
fn jne_imm(dst: u8, imm: i32, off: i16) -> u64 {
    insn(0x55, dst, 0, off, imm) // BPF_JMP | BPF_JNE | BPF_K
}
fn jeq_imm(dst: u8, imm: i32, off: i16) -> u64 {
    insn(0x15, dst, 0, off, imm) // BPF_JMP | BPF_JEQ | BPF_K
}
fn exit() -> u64 {
    insn(0x95, 0, 0, 0, 0) // BPF_JMP | BPF_EXIT
}

/// A conditional jump to the end of the current rule's block, patched once the block is complete.
enum Op {
    Plain(u64),
    SkipIfNe(u8, i32),
    SkipIfEq(u8, i32),
}

/// The kernel compares 32-bit immediates bitwise, so a u32 is passed through as its bit pattern.
fn imm(n: u32) -> i32 {
    i32::from_ne_bytes(n.to_ne_bytes())
}

/// One rule's block: falls through to "return allow" when every test matches, otherwise skips on.
fn rule_block(r: &Rule) -> Vec<u64> {
    let mut ops = Vec::new();
    match r.kind {
        'b' => ops.push(Op::SkipIfNe(R2, DEV_BLOCK)),
        'c' => ops.push(Op::SkipIfNe(R2, DEV_CHAR)),
        _ => {}
    }
    if r.access != ACC_ALL {
        ops.push(Op::Plain(mov32_reg(R1, R3)));
        if r.allow {
            // An allow rule matches when every requested access bit is in the rule.
            ops.push(Op::Plain(and32(R1, imm(!r.access & ACC_ALL))));
            ops.push(Op::SkipIfNe(R1, 0));
        } else {
            // A deny rule matches when any requested bit is in the rule.
            ops.push(Op::Plain(and32(R1, imm(r.access))));
            ops.push(Op::SkipIfEq(R1, 0));
        }
    }
    if let Some(m) = r.major {
        ops.push(Op::SkipIfNe(R4, imm(m)));
    }
    if let Some(m) = r.minor {
        ops.push(Op::SkipIfNe(R5, imm(m)));
    }
    ops.push(Op::Plain(mov64_imm(R0, i32::from(r.allow))));
    ops.push(Op::Plain(exit()));
    let len = ops.len();
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| {
            // Jump target is the first instruction after this block.
            let off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            match op {
                Op::Plain(x) => x,
                Op::SkipIfNe(reg, v) => jne_imm(reg, v, off),
                Op::SkipIfEq(reg, v) => jeq_imm(reg, v, off),
            }
        })
        .collect()
}

/// The whole program for `rules` (implicitly preceded by "deny all").
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut p = vec![
        ldx_w(R2, R1, 0),
        and32(R2, 0xffff),
        ldx_w(R3, R1, 0),
        rsh32(R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for r in rules.iter().rev() {
        p.extend(rule_block(r));
        if r.kind == 'a' && r.access == ACC_ALL {
            // Matches every request: what follows could never run, and the verifier rejects
            // unreachable instructions.
            return p;
        }
    }
    p.push(mov64_imm(R0, 0));
    p.push(exit());
    p
}

fn bpf_err(op: &str, dir: &Path, e: std::io::Error) -> CgroupError {
    CgroupError::sys(format!("{op} device program on {}", dir.display()), e)
}

/// Loads the program for `rules` and attaches it to the cgroup2 dir `dir`, then detaches the
/// programs that were attached there before (so an update never leaves a window with no filter).
pub fn apply(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let cg: OwnedFd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| bpf_err("open cgroup for", dir, e.into()))?;
    let old = sys::query_device_progs(cg.as_fd()).map_err(|e| bpf_err("query", dir, e))?;
    let prog = sys::load_device_prog(&program(rules)).map_err(|e| bpf_err("load", dir, e))?;
    sys::attach_device_prog(cg.as_fd(), prog.as_fd(), sys::BPF_F_ALLOW_MULTI)
        .map_err(|e| bpf_err("attach", dir, e))?;
    for id in old {
        let fd = sys::prog_fd_by_id(id).map_err(|e| bpf_err("find old", dir, e))?;
        sys::detach_device_prog(cg.as_fd(), fd.as_fd())
            .map_err(|e| bpf_err("detach old", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_kernel_layout() {
        // r2 = *(u32 *)(r1 + 0) is 0x61 with dst 2, src 1.
        assert_eq!(ldx_w(R2, R1, 0), 0x0000_0000_0000_1261);
        assert_eq!(jne_imm(R4, 1, 3), 0x0000_0001_0003_0455);
        assert_eq!(exit(), 0x95);
    }

    #[test]
    fn each_rule_block_ends_in_exit() {
        let r = Rule {
            allow: true,
            kind: 'c',
            major: Some(1),
            minor: Some(3),
            access: 2,
        };
        let b = rule_block(&r);
        assert_eq!(*b.last().unwrap(), exit());
        // type, mov, and, jne, major, minor, mov r0, exit
        assert_eq!(b.len(), 8);
        let p = program(&[r]);
        assert_eq!(p.len(), 6 + 8 + 2);
    }
}
