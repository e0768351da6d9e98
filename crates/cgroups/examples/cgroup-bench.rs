//! Times hull-cgroups creating, configuring and removing a container cgroup, as the runtime does on
//! every container start and delete. Prints one duration in microseconds per line.
//!
//! usage: cgroup-bench <iterations> <resources.json|-> ("-": create with no resources)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Instant;

use anyhow::{Context, Result};
use hull_cgroups::Cgroup;
use oci_spec::runtime::LinuxResources;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(res)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: cgroup-bench <iterations> <resources.json|->");
    };
    let n: u32 = n.parse().context("iterations")?;
    let resources: Option<LinuxResources> = if res == "-" {
        None
    } else {
        let text = std::fs::read_to_string(res).with_context(|| format!("read {res}"))?;
        Some(serde_json::from_str(&text).with_context(|| format!("parse {res}"))?)
    };
    for i in 0..n {
        let t0 = Instant::now();
        let mut cg = Cgroup::new(None, &format!("bench-{}-{i}", std::process::id()))?;
        cg.create(resources.as_ref())?;
        cg.add_process(i32::try_from(std::process::id())?).ok();
        // Move back out so the dir can be removed (the runtime's container process would exit).
        for h in cg.hierarchies() {
            let own = h.path.parent().context("parent")?.join("cgroup.procs");
            std::fs::write(own, std::process::id().to_string())?;
        }
        cg.remove()?;
        println!("{}", t0.elapsed().as_micros());
    }
    Ok(())
}
