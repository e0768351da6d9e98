//! memory: limit, reservation, swap, swappiness, OOM killer, kernelTCP (kernel is ignored),
//! hierarchy.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::error::CgroupError;
use crate::fs;
use crate::plan::{Ctx, Mode, Target};

const F: &str = "linux.resources.memory";

fn field(name: &str) -> String {
    format!("{F}.{name}")
}

/// A byte value: -1 is "unlimited", 0 is "unset" (as runc reads it), other negatives are errors.
fn bytes(name: &str, v: Option<i64>) -> Result<Option<i64>, CgroupError> {
    match v {
        Some(v) if v < -1 => Err(CgroupError::invalid(
            field(name),
            format!("{v} must be -1 (unlimited) or a byte count"),
        )),
        Some(0) | None => Ok(None),
        v => Ok(v),
    }
}

struct Values {
    limit: Option<i64>,
    reservation: Option<i64>,
    swap: Option<i64>,
    kernel_tcp: Option<i64>,
}

fn check(m: &LinuxMemory) -> Result<Values, CgroupError> {
    let v = Values {
        limit: bytes("limit", m.limit())?,
        reservation: bytes("reservation", m.reservation())?,
        swap: bytes("swap", m.swap())?,
        kernel_tcp: bytes("kernelTCP", m.kernel_tcp())?,
    };
    if let (Some(l), Some(s)) = (v.limit, v.swap) {
        if l > 0 && s >= 0 && s < l {
            return Err(CgroupError::invalid(
                field("swap"),
                format!("{s} is memory+swap and must be at least the memory limit {l}"),
            ));
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::invalid(
                field("swappiness"),
                format!("{s} is outside 0..=100"),
            ));
        }
    }
    if m.use_hierarchy() == Some(false) {
        return Err(CgroupError::invalid(
            field("useHierarchy"),
            "the kernel dropped non-hierarchical memory accounting (always hierarchical)",
        ));
    }
    Ok(v)
}

pub(crate) fn plan(cx: &mut Ctx, m: &LinuxMemory) -> Result<(), CgroupError> {
    let mut v = check(m)?;
    if bytes("kernel", m.kernel())?.is_some() {
        // As runc 1.2: the kernel (5.16+) takes the value and enforces nothing; v2 never had it.
        cx.ignore(
            &field("kernel"),
            "kernel memory limits were removed from the kernel (5.16+, and cgroup v2 never had them)",
        );
    }
    if v.kernel_tcp.is_some() && !kernel_tcp_file(cx) {
        cx.ignore(
            &field("kernelTCP"),
            "this kernel has no memory.kmem.tcp.limit_in_bytes (cgroup v2 charges TCP memory to memory.max)",
        );
        v.kernel_tcp = None;
    }
    let any = v.limit.is_some()
        || v.reservation.is_some()
        || v.swap.is_some()
        || v.kernel_tcp.is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    if !any {
        return Ok(());
    }
    let t = cx.target("memory", F)?;
    if cx.mode == Mode::Update && m.check_before_update() == Some(true) {
        check_usage(cx, t, v.limit)?;
    }
    if t.v2 {
        v2(cx, t, m, &v)
    } else {
        v1(cx, t, m, &v)
    }
}

/// Whether the hierarchy hosting memory still offers the v1 TCP memory limit.
fn kernel_tcp_file(cx: &Ctx) -> bool {
    cx.cg.host_of("memory").is_some_and(|i| {
        let d = cx.cg.dir(i);
        d.version == 1 && d.base.join("memory.kmem.tcp.limit_in_bytes").exists()
    })
}

/// runc's checkBeforeUpdate: refuse a limit below what the cgroup already uses.
fn check_usage(cx: &Ctx, t: Target, limit: Option<i64>) -> Result<(), CgroupError> {
    let Some(limit) = limit.and_then(|l| u64::try_from(l).ok()) else {
        return Ok(());
    };
    let file = if t.v2 {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let usage = fs::read_u64(&cx.path(t, file))?;
    if usage > limit {
        return Err(CgroupError::invalid(
            field("limit"),
            format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
        ));
    }
    Ok(())
}

fn v1(cx: &mut Ctx, t: Target, m: &LinuxMemory, v: &Values) -> Result<(), CgroupError> {
    // memory.limit must stay <= memsw.limit after each single write: raise memsw first when the new
    // limit is above the current memsw (only possible on update; a new cgroup is unlimited).
    let mut swap_first = false;
    if let (Some(l), Some(_), Mode::Update) = (v.limit, v.swap, cx.mode) {
        let cur = fs::read_u64(&cx.path(t, "memory.memsw.limit_in_bytes"))?;
        swap_first = l == -1 || u64::try_from(l).is_ok_and(|l| l > cur);
    }
    if let (true, Some(s)) = (swap_first, v.swap) {
        cx.write(t, "memory.memsw.limit_in_bytes", s, &field("swap"));
    }
    if let Some(l) = v.limit {
        cx.write(t, "memory.limit_in_bytes", l, &field("limit"));
    }
    if let (false, Some(s)) = (swap_first, v.swap) {
        if !Path::new(&cx.cg.dir(t.dir).base)
            .join("memory.memsw.limit_in_bytes")
            .exists()
        {
            return Err(CgroupError::invalid(
                field("swap"),
                "swap accounting is off in this kernel (no memory.memsw.limit_in_bytes)",
            ));
        }
        cx.write(t, "memory.memsw.limit_in_bytes", s, &field("swap"));
    }
    if let Some(r) = v.reservation {
        cx.write(t, "memory.soft_limit_in_bytes", r, &field("reservation"));
    }
    if let Some(k) = v.kernel_tcp {
        cx.write(t, "memory.kmem.tcp.limit_in_bytes", k, &field("kernelTCP"));
    }
    if let Some(s) = m.swappiness() {
        cx.write(t, "memory.swappiness", s, &field("swappiness"));
    }
    if let Some(d) = m.disable_oom_killer() {
        cx.write(
            t,
            "memory.oom_control",
            u8::from(d),
            &field("disableOOMKiller"),
        );
    }
    Ok(())
}

fn v2(cx: &mut Ctx, t: Target, m: &LinuxMemory, v: &Values) -> Result<(), CgroupError> {
    if m.swappiness().is_some() {
        return Err(CgroupError::invalid(
            field("swappiness"),
            "has no cgroup v2 interface",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(CgroupError::invalid(
            field("disableOOMKiller"),
            "has no cgroup v2 interface",
        ));
    }
    let max = |x: i64| {
        if x == -1 {
            "max".to_string()
        } else {
            x.to_string()
        }
    };
    if let Some(s) = v.swap {
        // OCI swap is memory+swap; v2's memory.swap.max is swap alone (runc's conversion).
        let value = match (s, v.limit) {
            (-1, _) => "max".to_string(),
            (s, Some(l)) if l > 0 => (s - l).to_string(),
            _ => {
                return Err(CgroupError::invalid(
                    field("swap"),
                    "a swap limit needs a memory limit on cgroup v2 (swap is memory+swap)",
                ))
            }
        };
        cx.write(t, "memory.swap.max", value, &field("swap"));
    }
    if let Some(l) = v.limit {
        cx.write(t, "memory.max", max(l), &field("limit"));
    }
    if let Some(r) = v.reservation {
        cx.write(t, "memory.low", max(r), &field("reservation"));
    }
    Ok(())
}
