//! network: v1 net_cls.classid and net_prio.ifpriomap (cgroup v2 has no equivalent).

use oci_spec::runtime::LinuxNetwork;

use crate::error::CgroupError;
use crate::plan::Ctx;

const F: &str = "linux.resources.network";

pub(crate) fn plan(cx: &mut Ctx, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let f = format!("{F}.classID");
        let t = net_target(cx, "net_cls", &f)?;
        cx.write(t, "net_cls.classid", id, &f);
    }
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let f = format!("{F}.priorities[{i}]");
        let name = p.name();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\n']) {
            return Err(CgroupError::invalid(
                format!("{f}.name"),
                format!("{name:?} is not an interface name"),
            ));
        }
        let t = net_target(cx, "net_prio", &f)?;
        cx.write(
            t,
            "net_prio.ifpriomap",
            format!("{name} {}", p.priority()),
            &f,
        );
    }
    Ok(())
}

/// net_cls/net_prio exist only as v1 hierarchies.
fn net_target(
    cx: &mut Ctx,
    controller: &str,
    field: &str,
) -> Result<crate::plan::Target, CgroupError> {
    if cx.cg.v1(controller).is_none() {
        return Err(CgroupError::invalid(
            field,
            format!("the {controller} cgroup controller is not mounted on this host (it exists only as a cgroup v1 hierarchy)"),
        ));
    }
    cx.target(controller, field)
}
