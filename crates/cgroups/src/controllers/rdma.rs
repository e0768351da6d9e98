//! rdma: per-device HCA handle/object limits (v1 rdma hierarchy or cgroup2 rdma.max).

use std::collections::HashMap;

use oci_spec::runtime::LinuxRdma;

use crate::error::CgroupError;
use crate::plan::Ctx;

const F: &str = "linux.resources.rdma";

pub(crate) fn plan(cx: &mut Ctx, r: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    let mut devs: Vec<_> = r.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        let f = format!("{F}.{dev}");
        if dev.is_empty() || dev.contains([' ', '\n', '/']) {
            return Err(CgroupError::invalid(f, "is not an RDMA device name"));
        }
        let mut parts = vec![dev.clone()];
        if let Some(h) = l.hca_handles() {
            parts.push(format!("hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            parts.push(format!("hca_object={o}"));
        }
        if parts.len() == 1 {
            continue;
        }
        let t = cx.target("rdma", &f)?;
        cx.write(t, "rdma.max", parts.join(" "), &f);
    }
    Ok(())
}
