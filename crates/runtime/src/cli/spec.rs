//! `spec` (a default config.json) and `features` (what this runtime implements, as the
//! runtime-spec features document describes).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hull_runtime::oci_state::OCI_VERSION;
use oci_spec::runtime::Spec;
use serde_json::json;

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// A config for a container run by an unprivileged user (user namespace, no cgroups).
    #[arg(long)]
    rootless: bool,
}

pub fn spec(args: SpecArgs) -> anyhow::Result<()> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = if args.rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_version(OCI_VERSION.to_string());
    spec.set_hostname(Some("hull".to_string()));
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
    }
    let text = serde_json::to_string_pretty(&spec)?;
    hull_runtime::state::write_atomic(&path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn features() -> anyhow::Result<()> {
    let features = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": hull_runtime::rootfs::supported_mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": hull_runtime::security::known_capabilities(),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true
            },
            "seccomp": hull_runtime::security::seccomp_features(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "io.github.hull.version": env!("CARGO_PKG_VERSION")
        }
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}
