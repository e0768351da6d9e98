//! `hull system df|prune|reset`, `hull info` and `hull version`: engine-wide information and cleanup,
//! in docker's rows and fields.

use std::path::Path;

use clap::Subcommand;
use hull_engine::filter::Filters;
use hull_engine::{Engine, EngineError};
use hull_image::ImageStore;
use serde_json::{json, Value};

use super::format;

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk used by images, containers, volumes and the build cache
    Df {
        /// Output format: table or json (one object a line)
        #[arg(long, default_value = "table")]
        format: String,
        /// Per-image detail
        #[arg(short, long)]
        verbose: bool,
    },
    /// Remove stopped containers, unused networks and dangling images (and volumes)
    Prune {
        /// Remove every unused image, not only dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
        /// Also remove anonymous volumes no container uses
        #[arg(long)]
        volumes: bool,
    },
    /// Remove everything this root holds (containers, volumes, networks, images) and the root
    Reset {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Show engine-wide information
    Info {
        /// Output format: table (default) or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
}

pub fn run(root: &Path, cmd: SystemCommand) -> anyhow::Result<()> {
    match cmd {
        SystemCommand::Df { format, verbose } => df(root, &format, verbose),
        SystemCommand::Prune {
            all,
            force,
            volumes,
        } => prune(root, all, force, volumes),
        SystemCommand::Reset { force } => reset(root, force),
        SystemCommand::Info { format } => info(root, &format),
    }
}

/// `system reset`, as podman's: the root as if hull had never used it.
fn reset(root: &Path, force: bool) -> anyhow::Result<()> {
    let what = format!(
        ":\n  - all containers\n  - all volumes\n  - all networks\n  - all images\n  - the root directory: {:?}",
        root.display().to_string()
    );
    if !force && !format::confirm(&what)? {
        return Ok(());
    }
    hull_engine::reset::reset(root)?;
    Ok(())
}

fn df(root: &Path, fmt: &str, verbose: bool) -> anyhow::Result<()> {
    let engine = Engine::open_existing(root)?;
    let rows = engine.disk_usage()?;
    let reclaimable = |r: &hull_engine::DiskRow| {
        let pct = r
            .reclaimable
            .saturating_mul(100)
            .checked_div(r.size)
            .unwrap_or(0);
        if r.kind == "Build Cache" {
            format::size(r.reclaimable)
        } else {
            format!("{} ({pct}%)", format::size(r.reclaimable))
        }
    };
    match fmt {
        "json" => {
            for r in &rows {
                println!(
                    "{}",
                    json!({
                        "Type": r.kind,
                        "TotalCount": r.total.to_string(),
                        "Active": r.active.to_string(),
                        "Size": format::size(r.size),
                        "Reclaimable": reclaimable(r),
                    })
                );
            }
        }
        "table" => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.kind.to_string(),
                        r.total.to_string(),
                        r.active.to_string(),
                        format::size(r.size),
                        reclaimable(r),
                    ]
                })
                .collect();
            format::table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &table);
            if verbose {
                let du = match engine.image_store()? {
                    Some(store) => store.disk_usage()?,
                    None => hull_image::store::DiskUsage::default(),
                };
                println!();
                let per: Vec<Vec<String>> = du
                    .per_image
                    .iter()
                    .map(|u| {
                        vec![
                            u.image.clone(),
                            format::size(u.size),
                            format::size(u.shared),
                            format::size(u.unique),
                        ]
                    })
                    .collect();
                format::table(&["IMAGE", "SIZE", "SHARED SIZE", "UNIQUE SIZE"], &per);
            }
        }
        other => {
            return Err(
                EngineError::Invalid(format!("--format {other:?}: expected table or json")).into(),
            )
        }
    }
    Ok(())
}

/// `system prune`: stopped containers, then the networks and images they no longer hold.
fn prune(root: &Path, all: bool, force: bool, volumes: bool) -> anyhow::Result<()> {
    let mut what = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if volumes {
        what.push("all anonymous volumes not used by at least one container");
    }
    what.push(if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    if !force && !format::confirm(&format!(":\n  - {}", what.join("\n  - ")))? {
        return Ok(());
    }
    let mut engine = Engine::open(root)?;
    let containers = engine.prune_containers(&Filters::default())?;
    let networks = engine.prune_networks()?;
    let (vols, vol_bytes) = if volumes {
        engine.volume_prune(false)?
    } else {
        (Vec::new(), 0)
    };
    let images = ImageStore::open(root)?.prune(all)?;
    let section = |title: &str, items: &[String], prefix: &str| {
        if !items.is_empty() {
            println!("{title}:");
            for i in items {
                println!("{prefix}{i}");
            }
            println!();
        }
    };
    section("Deleted Containers", &containers.removed, "");
    section("Deleted Networks", &networks.removed, "");
    section("Deleted Volumes", &vols, "");
    section("Deleted Images", &images.images, "deleted: ");
    let total = containers.bytes + vol_bytes + images.bytes;
    println!("Total reclaimed space: {}", format::size(total));
    Ok(())
}

pub fn info(root: &Path, fmt: &str) -> anyhow::Result<()> {
    let doc = Engine::open_existing(root)?.info()?;
    match fmt {
        "json" => println!("{}", serde_json::to_string_pretty(&doc)?),
        "table" => print_info(&doc),
        other => {
            return Err(
                EngineError::Invalid(format!("--format {other:?}: expected table or json")).into(),
            )
        }
    }
    Ok(())
}

/// docker's `info` text.
fn print_info(d: &Value) {
    let s = |k: &str| match &d[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let list = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    for pair in d["DriverStatus"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            pair[0].as_str().unwrap_or_default(),
            pair[1].as_str().unwrap_or_default()
        );
    }
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Cgroup Layout: {}", s("CgroupLayout"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Security Options:");
    for o in d["SecurityOptions"].as_array().into_iter().flatten() {
        println!("  {}", o.as_str().unwrap_or_default());
    }
    let k = &d["KernelFeatures"];
    println!(" Kernel Features:");
    println!("  Namespaces: {}", list(&k["Namespaces"]));
    println!("  Seccomp: {}", k["Seccomp"]);
    println!("  Overlayfs: {}", k["Overlayfs"]);
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        format::binary_size(d["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Name: {}", s("Name"));
    println!(" Hull Root Dir: {}", s("DockerRootDir"));
}

/// docker's `version` document: the client, and the engine (the same program: there is no
/// daemon).
fn version_doc(root: &Path) -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let part = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "RustVersion": env!("HULL_RUSTC_VERSION"),
        "GitCommit": env!("HULL_GIT_COMMIT"),
        "Os": std::env::consts::OS,
        "Arch": arch,
    });
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut server = part.clone();
    server["KernelVersion"] = json!(kernel);
    server["Root"] = json!(root);
    server["Runtime"] = json!("hull-runtime");
    json!({ "Client": part, "Server": server })
}

pub fn version(root: &Path, fmt: &str) -> anyhow::Result<()> {
    let doc = version_doc(root);
    match fmt {
        "json" => println!("{doc}"),
        "table" => {
            let c = &doc["Client"];
            let v = |x: &Value, k: &str| x[k].as_str().unwrap_or_default().to_string();
            let commit = |x: &Value| {
                let c = v(x, "GitCommit");
                if c.is_empty() {
                    "unknown".into()
                } else {
                    c
                }
            };
            println!("Client:");
            println!(" Version:           {}", v(c, "Version"));
            println!(" Rust version:      {}", v(c, "RustVersion"));
            println!(" Git commit:        {}", commit(c));
            println!(" OS/Arch:           {}/{}", v(c, "Os"), v(c, "Arch"));
            println!();
            let s = &doc["Server"];
            println!("Server: hull engine (daemonless)");
            println!(" Engine:");
            println!("  Version:          {}", v(s, "Version"));
            println!("  Rust version:     {}", v(s, "RustVersion"));
            println!("  Git commit:       {}", commit(s));
            println!("  OS/Arch:          {}/{}", v(s, "Os"), v(s, "Arch"));
            println!("  Kernel version:   {}", v(s, "KernelVersion"));
            println!(" Runtime:");
            println!("  Name:             {}", v(s, "Runtime"));
        }
        other => {
            return Err(
                EngineError::Invalid(format!("--format {other:?}: expected table or json")).into(),
            )
        }
    }
    Ok(())
}
