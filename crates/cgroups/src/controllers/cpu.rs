//! cpu: shares / weight, CFS quota + period + burst, realtime runtime/period (v1 only), idle.

use oci_spec::runtime::LinuxCpu;

use crate::error::CgroupError;
use crate::fs;
use crate::plan::{Ctx, Mode, Target};

const F: &str = "linux.resources.cpu";

/// Kernel bounds of cpu.shares (v1) and of the CFS period (1 ms .. 1 s) and minimum quota (1 ms).
const SHARES: (u64, u64) = (2, 262_144);
const PERIOD: (u64, u64) = (1_000, 1_000_000);
const MIN_QUOTA: i64 = 1_000;

/// cpu.shares -> cpu.weight the way runc 1.1 (installed here) converts: [2, 262144] -> [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

fn field(name: &str) -> String {
    format!("{F}.{name}")
}

fn check(c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        if !(SHARES.0..=SHARES.1).contains(&s) {
            return Err(CgroupError::invalid(
                field("shares"),
                format!("{s} is outside {}..={}", SHARES.0, SHARES.1),
            ));
        }
    }
    if let Some(p) = c.period().filter(|p| *p != 0) {
        if !(PERIOD.0..=PERIOD.1).contains(&p) {
            return Err(CgroupError::invalid(
                field("period"),
                format!("{p} us is outside {}..={} us", PERIOD.0, PERIOD.1),
            ));
        }
    }
    if let Some(q) = c.quota() {
        if q < -1 || (q > 0 && q < MIN_QUOTA) {
            return Err(CgroupError::invalid(
                field("quota"),
                format!("{q} must be -1 (unlimited) or at least {MIN_QUOTA} us"),
            ));
        }
    }
    if let Some(r) = c.realtime_runtime() {
        if r < -1 {
            return Err(CgroupError::invalid(
                field("realtimeRuntime"),
                format!("{r} must be -1 (unlimited) or >= 0"),
            ));
        }
    }
    if let Some(i) = c.idle() {
        if !(0..=1).contains(&i) {
            return Err(CgroupError::invalid(
                field("idle"),
                format!("{i} must be 0 or 1"),
            ));
        }
    }
    if c.burst().is_some() && c.quota().is_none_or(|q| q <= 0) && c.period().is_none() {
        // The kernel refuses a burst without a bandwidth limit; say why instead of EINVAL.
        return Err(CgroupError::invalid(
            field("burst"),
            "needs a cpu quota (a burst is credit on top of a bandwidth limit)",
        ));
    }
    Ok(())
}

fn any_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.burst().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
}

pub(crate) fn plan(cx: &mut Ctx, c: &LinuxCpu) -> Result<(), CgroupError> {
    check(c)?;
    if !any_set(c) {
        return Ok(());
    }
    let t = cx.target("cpu", F)?;
    if t.v2 {
        v2(cx, t, c)
    } else {
        let rt = c.realtime_runtime().is_some() || c.realtime_period().is_some();
        if rt && !cx.cg.dir(t.dir).base.join("cpu.rt_runtime_us").exists() {
            return Err(CgroupError::invalid(
                field("realtimeRuntime"),
                "this kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED; no cpu.rt_runtime_us)",
            ));
        }
        v1(cx, t, c);
        Ok(())
    }
}

fn v1(cx: &mut Ctx, t: Target, c: &LinuxCpu) {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        cx.write(t, "cpu.shares", s, &field("shares"));
    }
    // Period first: a quota is checked against the period in force when it is written.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        cx.write(t, "cpu.cfs_period_us", p, &field("period"));
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        cx.write(t, "cpu.cfs_quota_us", q, &field("quota"));
    }
    if let Some(b) = c.burst() {
        cx.write(t, "cpu.cfs_burst_us", b, &field("burst"));
    }
    if let Some(p) = c.realtime_period() {
        cx.write(t, "cpu.rt_period_us", p, &field("realtimePeriod"));
    }
    if let Some(r) = c.realtime_runtime() {
        cx.write(t, "cpu.rt_runtime_us", r, &field("realtimeRuntime"));
    }
    if let Some(i) = c.idle() {
        cx.write(t, "cpu.idle", i, &field("idle"));
    }
}

fn v2(cx: &mut Ctx, t: Target, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        return Err(CgroupError::invalid(
            field("realtimeRuntime"),
            "realtime scheduling limits have no cgroup v2 interface",
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        cx.write(t, "cpu.weight", shares_to_weight(s), &field("shares"));
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let q = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            // Only a period: keep the quota in force rather than lifting it.
            None if cx.mode == Mode::Update => {
                let cur = fs::read(&cx.path(t, "cpu.max"))?;
                cur.split_whitespace().next().unwrap_or("max").to_string()
            }
            None => "max".to_string(),
        };
        let v = match period {
            Some(p) => format!("{q} {p}"),
            None => q,
        };
        cx.write(t, "cpu.max", v, &field("quota"));
    }
    if let Some(b) = c.burst() {
        cx.write(t, "cpu.max.burst", b, &field("burst"));
    }
    if let Some(i) = c.idle() {
        cx.write(t, "cpu.idle", i, &field("idle"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_conversion() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
