//! `linux.seccomp`: the OCI object compiled to BPF with libseccomp in the runtime (before
//! clone, so a bad filter fails early), loaded with seccomp(2) in the container process.

use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::error::{spec_name, SecurityError};
use super::seccomp_cache::{Compiled, Entry};
use super::seccomp_enosys::LastSyscalls;
use crate::sys::seccomp as sys;

/// Syscalls hull's container init makes between loading the filter and execve, and passing
/// the listener fd; a NOTIFY on them would wait for an agent that has no fd yet.
const INIT_SYSCALLS: &[&str] = &["write", "sendmsg"];
const MAX_ERRNO: u32 = 4095;
const SYSCALL_ARGS: usize = 6;
const BPF_MAXINSNS: usize = 4096;

/// A compiled filter, its seccomp(2) flags, and where its listener goes.
pub(super) struct SeccompPlan {
    filter: Vec<libc::sock_filter>,
    flags: u32,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    ignored_syscalls: Vec<String>,
}

impl std::fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.filter.len())
            .field("flags", &self.flags)
            .field("listener_path", &self.listener_path)
            .field("listener_metadata", &self.listener_metadata)
            .field("ignored_syscalls", &self.ignored_syscalls)
            .finish()
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SecurityError {
    SecurityError::Seccomp {
        field: field.into(),
        message: message.into(),
    }
}

/// The kernel return value of an action, to ask the kernel whether it implements it.
fn ret_value(action: LinuxSeccompAction) -> u32 {
    action.as_u32(None) & 0xffff_0000
}

fn action(
    field: &str,
    act: LinuxSeccompAction,
    errno_ret: Option<u32>,
) -> Result<ScmpAction, SecurityError> {
    if !sys::action_available(ret_value(act)) {
        return Err(err(
            field,
            format!("{} is not supported by this kernel", spec_name(&act)),
        ));
    }
    let data = |default: u32| -> Result<u16, SecurityError> {
        let v = errno_ret.unwrap_or(default);
        u16::try_from(v)
            .ok()
            .filter(|v| u32::from(*v) <= MAX_ERRNO)
            .ok_or_else(|| {
                err(
                    field,
                    format!("errno {v} is above the largest errno {MAX_ERRNO}"),
                )
            })
    };
    let eperm = u32::try_from(libc::EPERM).unwrap_or(1);
    let scmp = match act {
        LinuxSeccompAction::ScmpActErrno => return Ok(ScmpAction::Errno(i32::from(data(eperm)?))),
        LinuxSeccompAction::ScmpActTrace => return Ok(ScmpAction::Trace(data(eperm)?)),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    };
    if let Some(e) = errno_ret {
        return Err(err(
            field,
            format!(
                "errno {e} is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
                spec_name(&act)
            ),
        ));
    }
    Ok(scmp)
}

fn condition(field: &str, arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SecurityError> {
    let index = arg.index();
    if index >= SYSCALL_ARGS {
        return Err(err(
            field,
            format!("index {index} is not below {SYSCALL_ARGS}"),
        ));
    }
    let op = arg.op();
    let masked = op == LinuxSeccompOperator::ScmpCmpMaskedEq;
    if !masked && arg.value_two().is_some_and(|v| v != 0) {
        return Err(err(
            field,
            format!(
                "valueTwo is only used by SCMP_CMP_MASKED_EQ, not {}",
                spec_name(&op)
            ),
        ));
    }
    // For MASKED_EQ the OCI `value` is the mask and `valueTwo` the value compared, as in runc.
    let (cmp, datum) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    // index < 6 was checked above.
    Ok(ScmpArgCompare::new(
        u32::try_from(index).unwrap_or(0),
        cmp,
        datum,
    ))
}

pub(super) fn flag_bit(flag: LinuxSeccompFilterFlag) -> u32 {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => sys::FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => sys::FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => sys::FLAG_SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => sys::FLAG_WAIT_KILLABLE_RECV,
    }
}

/// Whether the kernel knows `bit` (WAIT_KILLABLE_RECV only exists together with NEW_LISTENER).
pub(super) fn flag_supported(bit: u32) -> bool {
    let probe = if bit == sys::FLAG_WAIT_KILLABLE_RECV {
        bit | sys::FLAG_NEW_LISTENER
    } else {
        bit
    };
    sys::flags_supported(probe)
}

struct Compiler {
    ctx: ScmpFilterContext,
    default: ScmpAction,
    archs: Vec<ScmpArch>,
    last: LastSyscalls,
    notify: bool,
    ignored: Vec<String>,
}

impl Compiler {
    fn add_syscalls(&mut self, i: usize, rule: &LinuxSyscall) -> Result<(), SecurityError> {
        let field = format!("syscalls[{i}]");
        if rule.names().is_empty() {
            return Err(err(format!("{field}.names"), "is empty"));
        }
        let act = action(&field, rule.action(), rule.errno_ret())?;
        if act == ScmpAction::Notify {
            self.notify = true;
            if let Some(n) = rule
                .names()
                .iter()
                .find(|n| INIT_SYSCALLS.contains(&n.as_str()))
            {
                return Err(err(
                    &field,
                    format!("SCMP_ACT_NOTIFY cannot be used for {n:?}: the container init needs it before the listener reaches its agent"),
                ));
            }
        }
        let mut conds = Vec::new();
        let mut per_index = [0usize; SYSCALL_ARGS];
        for (j, a) in rule.args().iter().flatten().enumerate() {
            conds.push(condition(&format!("{field}.args[{j}]"), a)?);
            per_index[a.index()] += 1;
        }
        for name in rule.names() {
            self.last.note(name, &self.archs);
        }
        if act == self.default {
            // libseccomp refuses a rule equal to the default; it would change nothing.
            return Ok(());
        }
        // libseccomp ANDs conditions and refuses two on one argument; runc then falls back to
        // one rule per condition (OR), which is what such profiles mean.
        let groups: Vec<Vec<ScmpArgCompare>> = if per_index.iter().any(|n| *n > 1) {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        for name in rule.names() {
            // As runc: a name libseccomp does not know (newer or other-arch) is skipped.
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                self.ignored.push(name.clone());
                continue;
            };
            for g in &groups {
                self.ctx
                    .add_rule_conditional(act, sys, g)
                    .map_err(|e| err(&field, format!("adding {name:?}: {e}")))?;
            }
        }
        Ok(())
    }
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SecurityError> {
    let fail = SecurityError::SeccompCompile;
    let memfd =
        nix::sys::memfd::memfd_create(c"hull-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| fail(format!("memfd_create: {e}")))?;
    ctx.export_bpf(&memfd)
        .map_err(|e| fail(format!("exporting BPF: {e}")))?;
    let mut file = std::fs::File::from(memfd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(|e| fail(format!("reading BPF: {e}")))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The filter of `s`: libseccomp's, with its dispatch rewritten shorter when that can be
/// proven to decide the same (`seccomp_shrink`). `x32_left_out`: the filter answers x32
/// syscalls ENOSYS instead of judging them (`seccomp_x32`).
fn compile(s: &LinuxSeccomp, x32_left_out: bool) -> Result<Compiled, SecurityError> {
    let mut compiled = assemble(s, x32_left_out)?;
    if let Some(shorter) = super::seccomp_shrink::shrink(&compiled.filter) {
        compiled.filter = shorter;
    }
    Ok(compiled)
}

/// The filter of `s` as libseccomp compiles it (after the ENOSYS prologue); every rule is
/// checked here.
pub(super) fn assemble(s: &LinuxSeccomp, x32_left_out: bool) -> Result<Compiled, SecurityError> {
    let default_act = s.default_action();
    if default_act == LinuxSeccompAction::ScmpActNotify {
        return Err(err(
            "defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let default = action("defaultAction", default_act, s.default_errno_ret())?;
    let mut ctx =
        ScmpFilterContext::new(default).map_err(|e| err("defaultAction", e.to_string()))?;
    // A binary tree of syscall numbers instead of one comparison after another: the kernel
    // loads docker's default profile (~1150 instructions over three architectures) in well
    // under half the time (its JIT and cBPF conversion dominate every container's start), and
    // a syscall walks log(n) comparisons instead of n. Same decisions; a libseccomp older than
    // 2.5 knows no level 2 and keeps the linear filter.
    let _ = ctx.set_ctl_optimize(2);
    let mut c = Compiler {
        ctx,
        default,
        archs: vec![ScmpArch::native()],
        last: LastSyscalls::default(),
        notify: false,
        ignored: Vec::new(),
    };
    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        let name = spec_name(arch);
        let field = format!("architectures[{i}]");
        let scmp = ScmpArch::from_str(&name)
            .map_err(|_| err(&field, format!("{name} is not known to libseccomp")))?;
        if scmp == ScmpArch::X32 && x32_left_out {
            continue;
        }
        // libseccomp refuses an arch of the other byte order than the native one, or one
        // it was built without; either way the filter could not hold it.
        c.ctx.add_arch(scmp).map_err(|e| {
            err(
                &field,
                format!("{name} cannot be added to a filter on this host (libseccomp: {e})"),
            )
        })?;
        c.archs.push(scmp);
    }
    c.last = LastSyscalls::new(&c.archs);
    if x32_left_out {
        c.last.refuse_x32();
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        c.add_syscalls(i, rule)?;
    }
    let mut filter = match default {
        ScmpAction::Allow | ScmpAction::Log => Vec::new(),
        _ => c.last.prologue(),
    };
    filter.extend(export(&c.ctx)?);
    if filter.len() > BPF_MAXINSNS {
        return Err(err(
            "syscalls",
            format!(
                "the filter has {} BPF instructions, above the kernel's {BPF_MAXINSNS}",
                filter.len()
            ),
        ));
    }
    Ok(Compiled {
        filter,
        notify: c.notify,
        ignored: c.ignored,
    })
}

impl SeccompPlan {
    /// `cache`: the directory of compiled filters (see `seccomp_cache`), or None to compile.
    /// `here`: the filter is for this kernel (not a microVM's).
    pub(super) fn new(
        s: &LinuxSeccomp,
        cache: Option<&Path>,
        here: bool,
    ) -> Result<Self, SecurityError> {
        let x32_left_out = here && super::seccomp_x32::left_out(s);
        let entry = cache.and_then(|dir| Entry::new(dir, s, x32_left_out));
        let compiled = match entry.as_ref().and_then(Entry::load) {
            Some(hit) => hit,
            None => {
                let compiled = compile(s, x32_left_out)?;
                if let Some(entry) = &entry {
                    entry.store(&compiled);
                }
                compiled
            }
        };
        let mut flags = 0;
        for (i, f) in s.flags().iter().flatten().enumerate() {
            let bit = flag_bit(*f);
            if !flag_supported(bit) {
                return Err(err(
                    format!("flags[{i}]"),
                    format!("{} is not supported by this kernel", spec_name(f)),
                ));
            }
            flags |= bit;
        }
        if flags & sys::FLAG_WAIT_KILLABLE_RECV != 0 && !compiled.notify {
            return Err(err(
                "flags",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule",
            ));
        }
        if compiled.notify {
            if s.listener_path()
                .as_ref()
                .is_none_or(|p| p.as_os_str().is_empty())
            {
                return Err(err("listenerPath", "is required by SCMP_ACT_NOTIFY"));
            }
            flags |= sys::FLAG_NEW_LISTENER;
            if flags & sys::FLAG_TSYNC != 0 {
                // TSYNC reports a failing thread id in the return value, where the listener fd
                // goes; TSYNC_ESRCH makes it an error instead, as libseccomp does.
                flags |= sys::FLAG_TSYNC_ESRCH;
            }
        }
        Ok(Self {
            filter: compiled.filter,
            flags,
            listener_path: s.listener_path().clone(),
            listener_metadata: s.listener_metadata().clone(),
            ignored_syscalls: compiled.ignored,
        })
    }

    /// Installs the filter on the calling thread; returns the listener when a rule notifies.
    pub(super) fn load(&self) -> Result<Option<OwnedFd>, SecurityError> {
        sys::set_mode_filter(&self.filter, self.flags).map_err(|source| {
            SecurityError::SeccompLoad {
                flags: self.flags,
                source,
            }
        })
    }

    #[cfg(test)]
    pub(super) fn instructions(&self) -> usize {
        self.filter.len()
    }

    #[cfg(test)]
    pub(super) fn listener_path(&self) -> Option<&PathBuf> {
        self.listener_path.as_ref()
    }

    #[cfg(test)]
    pub(super) fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    pub(super) fn ignored_syscalls(&self) -> &[String] {
        &self.ignored_syscalls
    }
}

/// `s` compiled (through the cache) for a process this host does not start: a microVM's,
/// loaded by its guest agent. Its flags and program; a notifying rule is refused, as its
/// listener would be in the guest, out of reach of a seccomp agent here.
pub fn compile_elsewhere(
    s: &LinuxSeccomp,
    cache: Option<&Path>,
) -> Result<(u32, Vec<libc::sock_filter>), SecurityError> {
    let plan = SeccompPlan::new(s, cache, false)?;
    if plan.flags & sys::FLAG_NEW_LISTENER != 0 {
        return Err(err(
            "syscalls",
            "SCMP_ACT_NOTIFY is not supported for a process in a microVM",
        ));
    }
    Ok((plan.flags, plan.filter))
}
