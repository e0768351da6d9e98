//! `exec`: the process comes from `--process FILE` or from the container's own process config
//! with the command line's overrides, as runc builds it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hull_runtime::{Console, Container, ExecOptions, Runtime};
use oci_spec::runtime::{Capability, Process};

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(long = "console-socket")]
    pub(super) console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub(super) cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), replacing one of the process's.
    #[arg(long, short = 'e')]
    pub(super) env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(long, short = 't')]
    pub(super) tty: bool,
    /// UID[:GID] to run as.
    #[arg(long, short = 'u')]
    pub(super) user: Option<String>,
    /// Additional groups.
    #[arg(long = "additional-gids", short = 'g')]
    pub(super) additional_gids: Vec<u32>,
    /// A process.json holding the whole process to run.
    #[arg(long, short = 'p')]
    pub(super) process: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(long, short = 'd')]
    pub(super) detach: bool,
    #[arg(long = "pid-file")]
    pub(super) pid_file: Option<PathBuf>,
    /// SELinux label for the process (refused: no SELinux here).
    #[arg(long = "process-label")]
    pub(super) process_label: Option<String>,
    /// AppArmor profile for the process (refused: no AppArmor here).
    #[arg(long)]
    pub(super) apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub(super) no_new_privs: bool,
    /// Add a capability to the bounding, effective and permitted sets.
    #[arg(long, short = 'c')]
    pub(super) cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(super) preserve_fds: u16,
    /// Run the process in an existing sub-cgroup of the container's: [CONTROLLER[,...]:]PATH.
    #[arg(long)]
    pub(super) cgroup: Vec<String>,
    /// Allow exec in a paused container (the process is frozen with it until resume).
    #[arg(long = "ignore-paused")]
    pub(super) ignore_paused: bool,
    pub(super) id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(super) command: Vec<String>,
}

pub fn exec(runtime: &Runtime, args: ExecArgs) -> anyhow::Result<i32> {
    let container = runtime.open(&args.id)?;
    let mut opts = ExecOptions::new(build_process(&container, &args)?);
    opts.pid_file = args.pid_file;
    opts.preserve_fds = args.preserve_fds;
    opts.ignore_paused = args.ignore_paused;
    opts.sub_cgroups = args.cgroup;
    let socket = args.console_socket.map(Console::Socket);
    if args.detach {
        opts.console = socket;
        container.exec(opts)?;
        return Ok(0);
    }
    // In the foreground, a terminal is relayed to this process's own stdio.
    opts.console = socket.or(Some(Console::Return));
    Ok(container.exec_to_exit(opts)?)
}

fn build_process(container: &Container, args: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(path) = &args.process {
        // The file is the whole process: flags that would shape it too are refused, not dropped.
        let shaping = [
            (!args.command.is_empty(), "a command"),
            (args.cwd.is_some(), "--cwd"),
            (!args.env.is_empty(), "--env"),
            (args.tty, "--tty"),
            (args.user.is_some(), "--user"),
            (!args.additional_gids.is_empty(), "--additional-gids"),
            (!args.cap.is_empty(), "--cap"),
            (args.no_new_privs, "--no-new-privs"),
            (args.apparmor.is_some(), "--apparmor"),
            (args.process_label.is_some(), "--process-label"),
        ];
        if let Some((_, flag)) = shaping.iter().find(|(given, _)| *given) {
            anyhow::bail!(
                "--process {} cannot be combined with {flag}",
                path.display()
            );
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("reading process {}", path.display()))?;
        return hull_runtime::decode_oci_json(&bytes)
            .with_context(|| format!("{}: invalid process", path.display()));
    }
    anyhow::ensure!(!args.command.is_empty(), "exec: no command given");
    if args.process_label.is_some() {
        anyhow::bail!("--process-label: SELinux is not enabled on this host");
    }
    if args.apparmor.is_some() {
        anyhow::bail!("--apparmor: AppArmor is not enabled on this host");
    }
    let spec = container.config()?;
    let mut process = spec.process().clone().context("container has no process")?;
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    process.set_console_size(None);
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    // Appended: the process's environment keeps each name once, the last value winning (as
    // runc's init sets it), so `--env K=V` replaces a K of the container's process.
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(user) = &args.user {
        let mut parsed = hull_runtime::override_user(process.user(), user)?;
        if !args.additional_gids.is_empty() {
            parsed.set_additional_gids(Some(args.additional_gids.clone()));
        }
        process.set_user(parsed);
    } else if !args.additional_gids.is_empty() {
        let mut user = process.user().clone();
        user.set_additional_gids(Some(args.additional_gids.clone()));
        process.set_user(user);
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
                .map_err(|_| anyhow::anyhow!("--cap: unknown capability {name:?}"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}
