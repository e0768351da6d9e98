//! cgroup v1 devices controller: devices.deny "a" (deny all), then each rule in order.

use std::path::Path;

use super::Rule;
use crate::error::CgroupError;
use crate::fs;

pub(crate) fn apply(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let deny = dir.join("devices.deny");
    let allow = dir.join("devices.allow");
    fs::write_file(&deny, "a")?;
    for r in rules {
        let file = if r.allow { &allow } else { &deny };
        if r.kind != 'a' {
            fs::write_file(file, &r.v1_string())?;
        } else if r.access == super::ACC_ALL {
            // "a" switches the cgroup's default to allow-all or deny-all and drops the exceptions.
            fs::write_file(file, "a")?;
        } else {
            // v1's "a" cannot carry an access subset; both device kinds together mean the same.
            for kind in ['b', 'c'] {
                fs::write_file(file, &Rule { kind, ..*r }.v1_string())?;
            }
        }
    }
    Ok(())
}
