//! cpuset: cpus and mems; on v1 a new cpuset cgroup starts empty, so it is filled from its parent.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroup::Cgroup;
use crate::error::CgroupError;
use crate::fs;
use crate::plan::Ctx;

/// Checks the kernel's list syntax ("0-3,8,10-11") so a typo is named, not an EINVAL.
fn check_list(field: &str, s: &str) -> Result<(), CgroupError> {
    let bad = || {
        CgroupError::invalid(
            field,
            format!("{s:?} is not a list like \"0-3,8\" of non-negative numbers and ranges"),
        )
    };
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
    }
    Ok(())
}

pub(crate) fn plan(cx: &mut Ctx, c: &LinuxCpu) -> Result<(), CgroupError> {
    for (name, file, value) in [
        ("cpus", "cpuset.cpus", c.cpus()),
        ("mems", "cpuset.mems", c.mems()),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let field = format!("linux.resources.cpu.{name}");
        check_list(&field, v)?;
        let t = cx.target("cpuset", &field)?;
        cx.write(t, file, v, &field);
    }
    Ok(())
}

/// Fills cpuset.cpus and cpuset.mems of every v1 cpuset dir from the base down that has none,
/// from the dir above it, since the kernel refuses tasks in a cpuset with no cpus or mems. Not
/// only the dirs this cgroup created: a parent that another create made an instant ago may
/// still be empty (its creator fills it too; both write the same values).
pub(crate) fn init_v1(cg: &Cgroup) -> Result<(), CgroupError> {
    let Some(i) = cg.v1("cpuset") else {
        return Ok(());
    };
    let d = cg.dir(i);
    for dir in d.chain() {
        // A dir this cgroup just made is empty: no need to read it (create is timed).
        let ours = d.created.contains(&dir);
        let parent = dir.parent().unwrap_or(Path::new("/"));
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if !ours && !fs::read(&dir.join(file))?.trim().is_empty() {
                continue;
            }
            let value = fs::read(&parent.join(file))?;
            fs::write_file(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert!(check_list("f", "0-1,3").is_ok());
        assert!(check_list("f", "0").is_ok());
        assert!(check_list("f", "2-1").is_err());
        assert!(check_list("f", "a").is_err());
        assert!(check_list("f", "-1").is_err());
    }
}
