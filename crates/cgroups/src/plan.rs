//! Turning `LinuxResources` into a list of cgroup file writes. Building the plan validates every
//! field (and that its controller is mounted) before anything is created; applying it writes only
//! the fields that are set.

use oci_spec::runtime::LinuxResources;

use crate::cgroup::Cgroup;
use crate::controllers;
use crate::devices::{self, Rule};
use crate::error::CgroupError;
use crate::fs;
use crate::layout::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Update,
}

/// Where a controller's files are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub dir: usize,
    pub v2: bool,
}

#[derive(Debug)]
pub(crate) struct Write {
    pub dir: usize,
    pub file: String,
    pub value: String,
    pub field: String,
}

#[derive(Debug)]
pub(crate) enum DeviceRules {
    /// devices.deny / devices.allow in this v1 hierarchy; `bool`: an update of a live cgroup.
    V1(usize, Vec<Rule>, bool),
    /// An eBPF program attached to this cgroup2 dir.
    Bpf(usize, Vec<Rule>),
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub writes: Vec<Write>,
    pub devices: Option<DeviceRules>,
    /// Controllers to enable in the cgroup2 subtree_control of every dir above the container's.
    pub enable_v2: Vec<String>,
    /// Fields skipped because the kernel dropped what they set, one line each.
    pub ignored: Vec<String>,
}

pub(crate) struct Ctx<'a> {
    pub cg: &'a Cgroup,
    pub mode: Mode,
    pub plan: Plan,
}

impl Ctx<'_> {
    /// Finds the hierarchy hosting `controller`, or a clear error naming `field`.
    pub fn target(&mut self, controller: &str, field: &str) -> Result<Target, CgroupError> {
        let Some(dir) = self.cg.host_of(controller) else {
            return Err(CgroupError::invalid(
                field,
                format!("the {controller} cgroup controller is not mounted on this host"),
            ));
        };
        let v2 = self.cg.dir(dir).version == 2;
        if v2 && !self.plan.enable_v2.iter().any(|c| c == controller) {
            self.plan.enable_v2.push(controller.to_string());
        }
        Ok(Target { dir, v2 })
    }

    pub fn write(&mut self, t: Target, file: &str, value: impl ToString, field: &str) {
        self.plan.writes.push(Write {
            dir: t.dir,
            file: file.to_string(),
            value: value.to_string(),
            field: field.to_string(),
        });
    }

    /// Skips `field`, which the spec lets a runtime ignore; said once per field.
    pub fn ignore(&mut self, field: &str, reason: &str) {
        let line = format!("{field}: ignored: {reason}");
        if !self.plan.ignored.contains(&line) {
            self.plan.ignored.push(line);
        }
    }

    /// Full path of a file in the container's dir (for reads while planning an update).
    pub fn path(&self, t: Target, file: &str) -> std::path::PathBuf {
        self.cg.dir(t.dir).path.join(file)
    }
}

/// Validates `r` entirely and returns what to write.
pub(crate) fn build(cg: &Cgroup, r: &LinuxResources, mode: Mode) -> Result<Plan, CgroupError> {
    let mut cx = Ctx {
        cg,
        mode,
        plan: Plan::default(),
    };
    if let Some(c) = r.cpu() {
        controllers::cpu::plan(&mut cx, c)?;
        controllers::cpuset::plan(&mut cx, c)?;
    }
    if let Some(m) = r.memory() {
        controllers::memory::plan(&mut cx, m)?;
    }
    if let Some(p) = r.pids() {
        controllers::pids::plan(&mut cx, p)?;
    }
    if let Some(b) = r.block_io() {
        controllers::blkio::plan(&mut cx, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        controllers::hugetlb::plan(&mut cx, h)?;
    }
    if let Some(n) = r.network() {
        controllers::network::plan(&mut cx, n)?;
    }
    if let Some(rd) = r.rdma() {
        controllers::rdma::plan(&mut cx, rd)?;
    }
    if let Some(u) = r.unified() {
        controllers::unified::plan(&mut cx, u)?;
    }
    if let Some(d) = r.devices() {
        devices::plan(&mut cx, d)?;
    }
    Ok(cx.plan)
}

impl Plan {
    pub(crate) fn apply(&self, cg: &Cgroup) -> Result<(), CgroupError> {
        for w in &self.writes {
            let path = cg.dir(w.dir).path.join(&w.file);
            fs::write(&path, &w.value).map_err(|source| CgroupError::Apply {
                field: w.field.clone(),
                path,
                value: w.value.clone(),
                source,
            })?;
        }
        match &self.devices {
            Some(DeviceRules::V1(i, rules, update)) => {
                devices::v1::apply(&cg.dir(*i).path, rules, *update)
            }
            Some(DeviceRules::Bpf(i, rules)) => devices::bpf::apply(&cg.dir(*i).path, rules),
            None => Ok(()),
        }
    }
}

/// Controllers a pure v2 host enables for every container, as runc does (stats need them).
const UNIFIED_DEFAULT: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
];

/// Enables the needed cgroup2 controllers in the subtree_control of each dir above the container's
/// (the leaf itself holds processes, so it never enables any: no-internal-process rule).
pub(crate) fn enable_v2(cg: &Cgroup, plan: &Plan) -> Result<(), CgroupError> {
    let Some(i) = cg.v2() else { return Ok(()) };
    let mut wanted: Vec<&str> = plan.enable_v2.iter().map(String::as_str).collect();
    if cg.layout == Layout::Unified {
        wanted.extend(
            UNIFIED_DEFAULT
                .iter()
                .filter(|c| cg.v2_controllers.iter().any(|a| a == *c)),
        );
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let d = cg.dir(i);
    let mut chain = d.chain();
    chain.pop();
    chain.insert(0, d.base.clone());
    for dir in chain {
        let ctl = dir.join("cgroup.subtree_control");
        let have = fs::read(&ctl)?;
        let mut missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !have.split_whitespace().any(|h| h == *w))
            .collect();
        if missing.is_empty() {
            continue;
        }
        // Only what this level may enable; a requested one that is absent fails at its own write.
        let available = fs::read(&dir.join("cgroup.controllers"))?;
        missing.retain(|w| available.split_whitespace().any(|a| a == *w));
        if missing.is_empty() {
            continue;
        }
        let value = missing
            .iter()
            .map(|w| format!("+{w}"))
            .collect::<Vec<_>>()
            .join(" ");
        if let Err(source) = fs::write(&ctl, &value) {
            if source.raw_os_error() == Some(libc::EBUSY) {
                return Err(CgroupError::invalid(
                    "linux.cgroupsPath",
                    format!(
                        "cannot enable {value} in {}: it holds processes, and cgroup v2 delegates controllers only from cgroups without any",
                        dir.display()
                    ),
                ));
            }
            return Err(CgroupError::Write {
                path: ctl,
                value,
                source,
            });
        }
    }
    Ok(())
}
