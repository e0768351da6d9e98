//! `process.execCPUAffinity`: the CPU lists an exec'd process runs on before (`initial`) and
//! after (`final`) it joins the container's cgroup. The runtime-spec leaves the container's
//! init process out; the exec path calls these helpers around the cgroup join.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use oci_spec::runtime::ExecCPUAffinity;

use super::error::SecurityError;

/// Parses a Linux CPU list ("0-3,7,9-10") as `field` names it.
pub fn parse_cpu_list(field: &str, list: &str) -> Result<CpuSet, SecurityError> {
    let bad = |why: String| SecurityError::CpuAffinity {
        field: field.to_string(),
        value: list.to_string(),
        why,
    };
    let mut set = CpuSet::new();
    let mut any = false;
    for part in list.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{part:?} is not a CPU number or range")))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(bad(format!("range {part:?} runs backwards")));
        }
        for cpu in lo..=hi {
            set.set(cpu)
                .map_err(|_| bad(format!("CPU {cpu} is beyond {}", CpuSet::count() - 1)))?;
            any = true;
        }
    }
    if !any {
        return Err(bad("it names no CPU".into()));
    }
    Ok(set)
}

/// Both lists of `process.execCPUAffinity`, parsed.
pub fn parse_exec_cpu_affinity(
    a: &ExecCPUAffinity,
) -> Result<(Option<CpuSet>, Option<CpuSet>), SecurityError> {
    let parse =
        |field, v: &Option<String>| v.as_deref().map(|l| parse_cpu_list(field, l)).transpose();
    Ok((
        parse("process.execCPUAffinity.initial", a.initial())?,
        parse("process.execCPUAffinity.final", a.cpu_affinity_final())?,
    ))
}

/// Pins `pid` (0: the caller) to `cpus`.
pub fn set_cpu_affinity(pid: i32, cpus: &CpuSet) -> Result<(), SecurityError> {
    sched_setaffinity(Pid::from_raw(pid), cpus).map_err(|e| SecurityError::CpuAffinityApply {
        pid,
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bad_ones_are_named() {
        let set = parse_cpu_list("f", "0-2, 5").expect("list");
        let on: Vec<usize> = (0..8).filter(|c| set.is_set(*c).unwrap_or(false)).collect();
        assert_eq!(on, [0, 1, 2, 5]);
        for (bad, why) in [
            ("3-1", "runs backwards"),
            ("x", "is not a CPU number"),
            ("", "is not a CPU number"),
            ("99999", "is beyond"),
        ] {
            let err = parse_cpu_list("process.execCPUAffinity.final", bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("process.execCPUAffinity.final"), "{msg}");
            assert!(msg.contains(why), "{msg}");
        }
    }

    #[test]
    fn pinning_reads_back() {
        let mut child = std::process::Command::new("/bin/busybox")
            .args(["sleep", "30"])
            .spawn();
        let Ok(child) = child.as_mut() else {
            hull_testkit::skip!("/bin/busybox is missing (apt-get install busybox-static)");
        };
        let pid = i32::try_from(child.id()).expect("pid");
        let set = parse_cpu_list("f", "0").expect("list");
        let result = set_cpu_affinity(pid, &set);
        let got = nix::sched::sched_getaffinity(Pid::from_raw(pid));
        child.kill().expect("kill");
        child.wait().expect("wait");
        result.expect("setaffinity");
        let got = got.expect("getaffinity");
        assert!(got.is_set(0).expect("cpu 0"));
        assert!(!got.is_set(1).expect("cpu 1"));
    }
}
