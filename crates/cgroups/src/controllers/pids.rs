//! pids: the maximum number of tasks.

use oci_spec::runtime::LinuxPids;

use crate::error::CgroupError;
use crate::plan::{Ctx, Mode};

const F: &str = "linux.resources.pids.limit";

pub(crate) fn plan(cx: &mut Ctx, p: &LinuxPids) -> Result<(), CgroupError> {
    let value = match p.limit() {
        l if l < -1 => {
            return Err(CgroupError::invalid(
                F,
                format!("{l} must be -1 (unlimited) or a positive count"),
            ))
        }
        // runc update: 0 is "not given", and keeps the limit in force.
        0 if cx.mode == Mode::Update => return Ok(()),
        // runc: 0 and -1 both mean no limit.
        -1 | 0 => "max".to_string(),
        l => l.to_string(),
    };
    let t = cx.target("pids", F)?;
    cx.write(t, "pids.max", value, F);
    Ok(())
}
