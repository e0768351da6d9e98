//! unified: raw cgroup v2 "file": "value" pairs, written to the container's cgroup2 dir.

use std::collections::HashMap;

use crate::error::CgroupError;
use crate::layout::Layout;
use crate::plan::Ctx;

const F: &str = "linux.resources.unified";

/// Interface files of the cgroup core (no controller needed) that a container may set.
const CORE: &[&str] = &[
    "cgroup.max.depth",
    "cgroup.max.descendants",
    "cgroup.freeze",
];

pub(crate) fn plan(cx: &mut Ctx, u: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in keys {
        let f = format!("{F}.{key}");
        if cx.cg.layout == Layout::Legacy {
            return Err(CgroupError::invalid(
                f,
                "raw cgroup v2 keys need a cgroup v2 host (this host mounts only cgroup v1)",
            ));
        }
        let Some((controller, rest)) = key.split_once('.') else {
            return Err(CgroupError::invalid(
                f,
                "is not a cgroup v2 file name (\"<controller>.<file>\")",
            ));
        };
        if rest.is_empty() || key.contains(['/', '\0']) || key.starts_with('.') {
            return Err(CgroupError::invalid(f, "is not a cgroup v2 file name"));
        }
        let t = if controller == "cgroup" {
            if !CORE.contains(&key.as_str()) {
                return Err(CgroupError::invalid(
                    f,
                    "is not a settable cgroup core file",
                ));
            }
            let Some(dir) = cx.cg.v2() else {
                return Err(CgroupError::invalid(f, "no cgroup2 hierarchy is mounted"));
            };
            crate::plan::Target { dir, v2: true }
        } else {
            let on_v2 = cx.cg.v2_controllers.iter().any(|c| c == controller);
            if !on_v2 {
                let why = if cx.cg.v1(controller).is_some() {
                    format!(
                        "the {controller} controller is a cgroup v1 hierarchy on this hybrid host"
                    )
                } else {
                    format!("unknown cgroup v2 controller {controller:?} (the cgroup2 mount offers: {})", cx.cg.v2_controllers.join(" "))
                };
                return Err(CgroupError::invalid(f, why));
            }
            let t = cx.target(controller, &f)?;
            if !t.v2 {
                return Err(CgroupError::invalid(
                    f,
                    format!(
                        "the {controller} controller is a cgroup v1 hierarchy on this hybrid host"
                    ),
                ));
            }
            t
        };
        if value.contains('\0') {
            return Err(CgroupError::invalid(f, "value contains a NUL byte"));
        }
        cx.write(t, key, value, &f);
    }
    Ok(())
}
