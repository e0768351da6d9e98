//! The container commands (`run`, `create`, `start`, `ps`, `logs`, `stop`, `kill`, `rm`, `wait`,
//! `inspect`): flags parsed as docker's, everything else done by hull-engine. Each returns the
//! process's exit status (docker's: the container's own for a foreground `run`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use hull_engine::options::{self, Network};
use hull_engine::{
    Attach, Engine, EngineError, MountSpec, PullPolicy, Record, Report, RestartPolicy, RunOptions,
    State,
};

use super::format;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a container from an image
    Run(Box<RunArgs>),
    /// Create a container from an image without running it
    Create(Box<RunArgs>),
    /// Start created or exited containers (in the background)
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers (running ones; all with -a)
    Ps {
        /// Show every container, also created and exited ones
        #[arg(short, long)]
        all: bool,
        /// Print ids only
        #[arg(short, long)]
        quiet: bool,
        /// Print whole ids
        #[arg(long)]
        no_trunc: bool,
        /// Output format: table (default) or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Print a container's output
    Logs {
        /// Keep printing new output until the container stops
        #[arg(short, long)]
        follow: bool,
        container: String,
    },
    /// Stop containers: their stop signal, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait before SIGKILL
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers' processes
    Kill {
        /// Signal name or number
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Kill running containers first
        #[arg(short, long)]
        force: bool,
        /// Also remove the containers' anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to stop; print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec {
        /// Keep stdin open: the process reads this command's stdin
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal (not supported yet)
        #[arg(short, long)]
        tty: bool,
        /// Run in the background (not supported yet)
        #[arg(short, long)]
        detach: bool,
        /// Set an environment variable (K=V)
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// Working directory inside the container
        #[arg(short, long = "workdir")]
        workdir: Option<String>,
        /// User (name or uid, optionally :group or :gid)
        #[arg(short, long)]
        user: Option<String>,
        /// The container, then the command and its arguments
        #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
        args: Vec<String>,
    },
    /// Show containers' details as JSON (images too, when no container has the name)
    Inspect {
        /// Print only what the kernel holds for each container (namespaces, cgroups, overlay,
        /// network) as a short report
        #[arg(long)]
        kernel: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The flags of `run` and `create`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Name of the container
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (K=V, or K to pass this shell's value)
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (K=V lines)
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long = "workdir")]
    workdir: Option<String>,
    /// User (name or uid, optionally :group or :gid)
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name (default: the first 12 digits of its id)
    #[arg(long)]
    hostname: Option<String>,
    /// Network: none, host, or a network's name (default: the default bridge network)
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Publish a port: [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]
    #[arg(short, long = "publish")]
    publish: Vec<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long)]
    memory: Option<String>,
    /// CPU quota in CPUs (e.g. 0.5)
    #[arg(long)]
    cpus: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Mount a host path or a volume: HOSTPATH:PATH[:ro], NAME:PATH[:ro], or PATH (anonymous)
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..]...
    #[arg(long = "mount")]
    mount: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS] (e.g. /run:size=64m,mode=1777)
    #[arg(long = "tmpfs")]
    tmpfs: Vec<String>,
    /// Keep stdin open: the container reads this command's stdin
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal (not supported yet)
    #[arg(short, long)]
    tty: bool,
    /// Restart policy when the container exits: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no")]
    restart: String,
    /// Pull the image before creating the container: missing (when not in the store), always, never
    #[arg(long, default_value = "missing")]
    pull: String,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND [ARG...]]"
    )]
    args: Vec<String>,
}

impl RunArgs {
    fn options(&self) -> Result<(String, RunOptions), EngineError> {
        if self.tty {
            return Err(EngineError::Unsupported(
                "-t (a terminal for the container)",
            ));
        }
        let (image, command) = self
            .args
            .split_first()
            .ok_or_else(|| EngineError::Invalid("an image is required".into()))?;
        let opts = RunOptions {
            name: self.name.clone(),
            command: command.to_vec(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            network: self
                .network
                .as_deref()
                .map(Network::parse)
                .transpose()?
                .unwrap_or_default(),
            ports: self
                .publish
                .iter()
                .map(|p| p.parse())
                .collect::<Result<_, _>>()?,
            memory: self
                .memory
                .as_deref()
                .map(options::parse_memory)
                .transpose()?,
            millicpus: self.cpus.as_deref().map(options::parse_cpus).transpose()?,
            pids_limit: self
                .pids_limit
                .as_deref()
                .map(options::parse_pids_limit)
                .transpose()?
                .flatten(),
            mounts: self
                .volume
                .iter()
                .map(|v| MountSpec::parse_volume(v))
                .chain(self.mount.iter().map(|m| MountSpec::parse_mount(m)))
                .chain(self.tmpfs.iter().map(|t| MountSpec::parse_tmpfs(t)))
                .collect::<Result<_, _>>()?,
            rm: self.rm,
            interactive: self.interactive,
            restart: RestartPolicy::parse(&self.restart)?,
        };
        Ok((image.clone(), opts))
    }
}

pub fn run(root: &Path, cmd: ContainerCommand) -> anyhow::Result<i32> {
    let mut engine = Engine::open(root)?;
    match cmd {
        ContainerCommand::Run(args) => {
            let (image, opts) = args.options()?;
            opts.validate()?;
            if !ensure_image(root, &image, &args.pull)? {
                return Ok(EXIT_PULL_FAILED);
            }
            return run_container(&mut engine, &args);
        }
        ContainerCommand::Create(args) => {
            let (image, opts) = args.options()?;
            opts.validate()?;
            if !ensure_image(root, &image, &args.pull)? {
                return Ok(EXIT_PULL_FAILED);
            }
            let created = engine.create(&image, &opts)?;
            warn(&created.warnings);
            println!("{}", created.record.id);
        }
        ContainerCommand::Start { containers } => {
            for c in containers {
                let mut monitor = engine.start(&c, None)?;
                started(monitor.next_report(), &c)?;
                println!("{c}");
            }
        }
        ContainerCommand::Ps {
            all,
            quiet,
            no_trunc,
            format,
        } => ps(&engine, all, quiet, no_trunc, &format)?,
        ContainerCommand::Logs { follow, container } => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            engine.logs(&container, follow, &mut out, &mut err)?;
        }
        ContainerCommand::Stop { time, containers } => {
            for c in containers {
                engine.stop(&c, Duration::from_secs(time))?;
                println!("{c}");
            }
        }
        ContainerCommand::Kill { signal, containers } => {
            let sig = hull_runtime::parse_signal(&signal)
                .ok_or_else(|| EngineError::Invalid(format!("invalid signal {signal:?}")))?;
            for c in containers {
                engine.kill(&c, sig)?;
                println!("{c}");
            }
        }
        ContainerCommand::Rm {
            force,
            volumes,
            containers,
        } => {
            for c in containers {
                if volumes {
                    engine.remove_with_volumes(&c, force)?;
                } else {
                    engine.remove(&c, force)?;
                }
                println!("{c}");
            }
        }
        ContainerCommand::Wait { containers } => {
            for c in containers {
                println!("{}", engine.wait(&c)?);
            }
        }
        ContainerCommand::Exec {
            interactive,
            tty,
            detach,
            env,
            workdir,
            user,
            args,
        } => {
            if tty {
                return Err(EngineError::Unsupported("exec -t (a terminal)").into());
            }
            if detach {
                return Err(EngineError::Unsupported("exec -d").into());
            }
            let (container, command) = args.split_first().context("a container is required")?;
            let req = hull_engine::ExecRequest {
                command: command.to_vec(),
                env,
                workdir,
                user,
                interactive,
            };
            return Ok(engine.exec(container, &req)?);
        }
        ContainerCommand::Inspect {
            kernel: true,
            names,
        } => {
            for n in &names {
                let view = engine.kernel_view(n)?;
                print!(
                    "{}",
                    hull_engine::kernel::report(&engine.find(n)?.name, &view)
                );
            }
        }
        ContainerCommand::Inspect { names, .. } => {
            let mut docs = Vec::new();
            for n in &names {
                match engine.inspect(n) {
                    Ok(doc) => docs.push(doc),
                    Err(EngineError::NoSuchContainer(_)) => {
                        let store = hull_image::ImageStore::open(root)?;
                        docs.push(
                            store
                                .inspect(n)
                                .with_context(|| format!("no such container or image: {n}"))?,
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&docs)?);
        }
    }
    Ok(0)
}

/// The exit status of `run` and `create` when the pull of their image failed (the pull has
/// said why, on stderr): docker's for an engine error.
const EXIT_PULL_FAILED: i32 = hull_engine::EXIT_ENGINE;

/// Pulls `image` as `--pull` says; false when the pull failed. The pull runs as a child `hull
/// pull` (its progress bars on this command's stderr, its output too, so that stdout keeps only
/// what `run` and `create` print): a registry client starts threads, and this process must stay
/// single-threaded to fork the container's monitor.
fn ensure_image(root: &Path, image: &str, pull: &str) -> anyhow::Result<bool> {
    let policy = PullPolicy::parse(pull)?;
    let present = match hull_image::ImageStore::open(root)?.resolve(image) {
        Ok(_) => true,
        Err(hull_image::StoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    match (policy, present) {
        (PullPolicy::Never, false) => {
            return Err(EngineError::Invalid(format!(
                "no such image: {image} (not in the store, and --pull never)"
            ))
            .into())
        }
        (PullPolicy::Never, true) | (PullPolicy::Missing, true) => return Ok(true),
        (PullPolicy::Always, _) | (PullPolicy::Missing, false) => {}
    }
    let exe = std::env::current_exe().context("finding the hull binary to pull with")?;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(root).arg("pull");
    // docker's rule: a registry on the loopback is reached over plain http without asking.
    if loopback_registry(image) {
        cmd.arg("--insecure");
    }
    let status = cmd
        .arg(image)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(stderr))
        .status()
        .context("running hull pull")?;
    Ok(status.success())
}

/// Whether the reference names a registry on this host's loopback (`127.0.0.1:5000/x`,
/// `localhost/x`, `[::1]:5000/x`).
fn loopback_registry(image: &str) -> bool {
    let Some((first, _)) = image.split_once('/') else {
        return false;
    };
    let host = match first.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => first.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("hull: warning: {w}");
    }
}

/// The first report of a monitor started in the background.
fn started(report: Option<Report>, id: &str) -> Result<(), EngineError> {
    match report {
        Some(Report::Started(_) | Report::Exited(_)) => Ok(()),
        Some(Report::Failed { code, message }) => Err(EngineError::Exec { code, message }),
        None => Err(EngineError::Monitor {
            id: id.to_string(),
            message: "exited before starting the container".into(),
        }),
    }
}

fn run_container(engine: &mut Engine, args: &RunArgs) -> anyhow::Result<i32> {
    let (image, opts) = args.options()?;
    let created = engine.create(&image, &opts)?;
    warn(&created.warnings);
    let id = created.record.id;
    let attach = if args.detach {
        None
    } else {
        let dup =
            |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().context("duplicating stdio");
        Some(Attach {
            stdin: if args.interactive {
                Some(dup(std::io::stdin().as_fd())?)
            } else {
                None
            },
            stdout: dup(std::io::stdout().as_fd())?,
            stderr: dup(std::io::stderr().as_fd())?,
        })
    };
    let monitor = match engine.start(&id, attach) {
        Ok(m) => m,
        Err(e) => {
            // Nothing runs: a container the user never sees started is not left behind.
            let _ = engine.remove_with_volumes(&id, true);
            return Err(e.into());
        }
    };
    let result = if args.detach {
        let mut monitor = monitor;
        started(monitor.next_report(), &id).map(|()| {
            println!("{id}");
            0
        })
    } else {
        engine.wait_attached(monitor, &id)
    };
    if result.is_err() && opts.rm {
        // A monitor that failed before it owned the container left it to its starter.
        let _ = engine.remove_with_volumes(&id, true);
    }
    Ok(result?)
}

fn ps(engine: &Engine, all: bool, quiet: bool, no_trunc: bool, format: &str) -> anyhow::Result<()> {
    let short = |id: &str| {
        if no_trunc {
            id.to_string()
        } else {
            id[..12].to_string()
        }
    };
    let list: Vec<Record> = engine
        .list()?
        .into_iter()
        .filter(|r| all || r.state.is_live())
        .collect();
    if quiet {
        for r in &list {
            println!("{}", short(&r.id));
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&list)?),
        "table" => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    let mut command = format!("\"{}\"", r.command.join(" "));
                    if command.chars().count() > 22 {
                        command = command.chars().take(19).collect::<String>() + "…\"";
                    }
                    vec![
                        short(&r.id),
                        r.image.clone(),
                        command,
                        format::age(Some(&r.created)),
                        status(r),
                        r.settings
                            .ports
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        r.name.clone(),
                    ]
                })
                .collect();
            format::table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ],
                &rows,
            );
        }
        other => anyhow::bail!("unknown --format {other:?}: use table or json"),
    }
    Ok(())
}

/// docker's STATUS column.
fn status(r: &Record) -> String {
    match r.state {
        State::Created => "Created".into(),
        State::Starting => "Starting".into(),
        State::Running => {
            let up = format::age(r.started.as_deref());
            format!("Up {}", up.strip_suffix(" ago").unwrap_or(&up))
        }
        State::Restarting => format!(
            "Restarting ({}) {}",
            r.exit_code.unwrap_or(0),
            format::age(r.finished.as_deref())
        ),
        State::Exited => format!(
            "Exited ({}) {}",
            r.exit_code.unwrap_or(0),
            format::age(r.finished.as_deref())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_registry;

    #[test]
    fn loopback_registries() {
        assert!(loopback_registry("127.0.0.1:5000/hull/busybox:1"));
        assert!(loopback_registry("localhost/x"));
        assert!(loopback_registry("[::1]:5000/x"));
        assert!(!loopback_registry("busybox"));
        assert!(!loopback_registry("library/busybox"));
        assert!(!loopback_registry("registry.example:5000/x"));
    }
}
