//! Classic BPF as seccomp uses it: the instruction encodings the runtime's own filter code
//! writes (the ENOSYS prologue, the shrunk dispatch), and an interpreter of whole filters over
//! a `seccomp_data`, which tests use to compare two filters decision by decision.

pub(super) const LD_W_ABS: u16 = 0x20;
pub(super) const JA: u16 = 0x05;
pub(super) const JEQ_K: u16 = 0x15;
pub(super) const JGT_K: u16 = 0x25;
pub(super) const JGE_K: u16 = 0x35;
pub(super) const JSET_K: u16 = 0x45;
pub(super) const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
pub(super) const OFFSET_NR: u32 = 0;
pub(super) const OFFSET_ARCH: u32 = 4;

pub(super) fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// What a filter reads: `struct seccomp_data`.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

#[cfg(test)]
impl SeccompData {
    fn word(&self, offset: u32) -> u32 {
        let lo = |v: u64| (v & 0xffff_ffff) as u32;
        let hi = |v: u64| (v >> 32) as u32;
        match offset {
            0 => self.nr,
            4 => self.arch,
            8 => lo(self.ip),
            12 => hi(self.ip),
            o @ 16..=60 if o % 4 == 0 => {
                let arg = self.args[((o - 16) / 8) as usize];
                if o % 8 == 0 {
                    lo(arg)
                } else {
                    hi(arg)
                }
            }
            o => panic!("load at offset {o} out of seccomp_data"),
        }
    }
}

/// The value the filter returns for `data` (every instruction seccomp accepts; panics on a
/// malformed program, which the kernel would refuse).
#[cfg(test)]
pub(super) fn run(prog: &[libc::sock_filter], data: &SeccompData) -> u32 {
    let (mut pc, mut a, mut x) = (0usize, 0u32, 0u32);
    let mut mem = [0u32; 16];
    loop {
        let i = prog[pc];
        let k = i.k;
        pc += 1;
        let src = if i.code & 0x08 != 0 { x } else { k };
        match i.code & 0x07 {
            0x00 => match i.code {
                0x20 => a = data.word(k),
                0x80 => a = 64, // LD W LEN
                0x00 => a = k,  // LD IMM
                0x60 => a = mem[k as usize],
                c => panic!("unknown load {c:#x}"),
            },
            0x01 => match i.code {
                0x01 => x = k,
                0x81 => x = 64,
                0x61 => x = mem[k as usize],
                c => panic!("unknown ldx {c:#x}"),
            },
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => {
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).unwrap_or(0),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).unwrap_or(0),
                    0xa0 => a ^ src,
                    c => panic!("unknown alu {c:#x}"),
                }
            }
            0x05 => {
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    c => panic!("unknown jump {c:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => return if i.code & 0x18 == 0x10 { a } else { k },
            _ => {
                if i.code & 0xf8 == 0x00 {
                    x = a; // TAX
                } else {
                    a = x; // TXA
                }
            }
        }
    }
}
