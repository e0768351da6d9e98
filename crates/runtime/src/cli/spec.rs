//! `spec` (a default config.json) and `features` (what this runtime implements, as the
//! runtime-spec features document describes).

use std::path::PathBuf;

use clap::Args;

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
    Ok(hull_runtime::write_default_spec(
        &args.bundle,
        args.rootless,
    )?)
}

pub fn features() -> anyhow::Result<()> {
    super::print_line(serde_json::to_string_pretty(&hull_runtime::features())?)?;
    Ok(())
}
