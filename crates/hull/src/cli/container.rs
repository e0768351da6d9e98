//! The container commands (`run`, `create`, `start`, `attach`, `logs`, `stop`, `kill`, `rm`,
//! `wait`, `exec`, `inspect`; `ps` in ps.rs): flags parsed as docker's, everything else done by hull-engine. Each returns the
//! process's exit status (docker's: the container's own for a foreground `run`).

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Subcommand};
use hull_engine::attach::client::{terminal_size, SessionOptions};
use hull_engine::attach::keys::DetachKeys;
use hull_engine::log_opts::LogOptions;
use hull_engine::monitor::Early;
use hull_engine::options::{self, Network};
use hull_engine::vm::{Isolation, Vmm};
use hull_engine::{
    Attached, Engine, EngineError, LogQuery, MountSpec, PullPolicy, Report, RestartPolicy,
    RunOptions, State,
};

/// The commands that make a container: apart, so that their start parses without building
/// every other command's flags ([`super::parse`]).
#[derive(Debug, Subcommand)]
pub enum MakeCommand {
    /// Create and run a container from an image
    Run(Box<RunArgs>),
    /// Create a container from an image without running it
    Create(Box<RunArgs>),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    #[command(flatten)]
    Make(MakeCommand),
    /// Start created or exited containers (in the background, or attached with -a)
    Start {
        /// Attach to the container's output (and with -i its input) and return its exit code
        #[arg(short, long)]
        attach: bool,
        /// Attach the container's stdin (it must have been made with -i)
        #[arg(short, long)]
        interactive: bool,
        /// Keys that detach from the container: ctrl-X or a character, comma-separated
        /// (default ctrl-p,ctrl-q)
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's output and input
    Attach {
        /// Do not attach stdin
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        /// Keys that detach from the container: ctrl-X or a character, comma-separated
        /// (default ctrl-p,ctrl-q)
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        /// Pass the signals this command gets on to the container
        #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set)]
        sig_proxy: bool,
        container: String,
    },
    /// List containers (running ones; all with -a)
    Ps(super::ps::PsArgs),
    /// Print a container's output
    Logs {
        /// Keep printing new output until the container stops
        #[arg(short, long)]
        follow: bool,
        /// Only lines since this time: RFC 3339, unix seconds, or a duration before now (10m)
        #[arg(long)]
        since: Option<String>,
        /// Only lines until this time: RFC 3339, unix seconds, or a duration before now (10m)
        #[arg(long)]
        until: Option<String>,
        /// Only the last N lines ("all" for every line)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Prefix each line with its time
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Stop containers: their stop signal, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10;
        /// -1: wait until it exits)
        #[arg(short = 't', long = "time", allow_negative_numbers = true)]
        time: Option<i64>,
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
        /// Allocate a terminal for the process
        #[arg(short, long)]
        tty: bool,
        /// Run in the background: start the process and return (its output is dropped)
        #[arg(short, long)]
        detach: bool,
        /// Keys that detach from the process with -it: ctrl-X or a character, comma-separated
        /// (default ctrl-p,ctrl-q)
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
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
    /// Publish every exposed port (the image's and --expose's) to a free host port
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or a range: PORT[/tcp|udp] or START-END[/tcp|udp]
    #[arg(long)]
    expose: Vec<String>,
    /// Set a label (K=V)
    #[arg(short, long = "label")]
    label: Vec<String>,
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
    /// Allocate a terminal: the container's stdio is a pty
    #[arg(short, long)]
    tty: bool,
    /// Keys that detach from the container: ctrl-X or a character, comma-separated
    /// (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Pass the signals this command gets on to the container (foreground only)
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set)]
    sig_proxy: bool,
    /// Log driver option: max-size=SIZE (rotate the log at this size), max-file=N (files kept)
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Restart policy when the container exits: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no")]
    restart: String,
    /// Pull the image before creating the container: missing (when not in the store), always, never
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Isolation: container (the host's kernel) or vm (a microVM with a kernel of its own)
    #[arg(long, default_value = "container")]
    isolation: String,
    /// The VMM of --isolation vm: hull (hull-vmm, KVM) or qemu (-M microvm; KVM, or TCG
    /// where KVM cannot boot a stock kernel)
    #[arg(long, default_value = "hull")]
    vmm: String,
    #[command(flatten)]
    extra: super::run_flags::ExtraRunArgs,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND [ARG...]]"
    )]
    args: Vec<String>,
}

impl RunArgs {
    /// Whether the container will have a network namespace of its own that its monitor can
    /// make ahead (a VM's monitor makes its own; a bad --network is reported later).
    fn own_netns(&self) -> bool {
        let host = matches!(
            self.network.as_deref().map(Network::parse),
            Some(Ok(Network::Host))
        );
        !host && matches!(self.isolation(), Ok(Isolation::Container))
    }

    fn isolation(&self) -> Result<Isolation, EngineError> {
        let vmm = Vmm::parse(&self.vmm)?;
        match self.isolation.as_str() {
            "container" | "default" => Ok(Isolation::Container),
            "vm" => Ok(Isolation::Vm(vmm)),
            other => Err(EngineError::Invalid(format!(
                "invalid --isolation {other:?}: container or vm"
            ))),
        }
    }

    fn options(&self) -> Result<(String, RunOptions), EngineError> {
        let (image, command) = self
            .args
            .split_first()
            .ok_or_else(|| EngineError::Invalid("an image is required".into()))?;
        let mut opts = RunOptions {
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
            tty: self.tty,
            restart: RestartPolicy::parse(&self.restart)?,
            log: LogOptions::parse(&self.log_opt)?,
            labels: self
                .label
                .iter()
                .map(|l| super::volume::label(l))
                .collect::<Result<_, _>>()?,
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            isolation: self.isolation()?,
            ..Default::default()
        };
        self.extra.apply(&mut opts)?;
        Ok((image.clone(), opts))
    }
}

/// Runs container command `cmd`.
pub fn run(root: &Path, cmd: ContainerCommand) -> anyhow::Result<i32> {
    let reads_only = matches!(
        cmd,
        ContainerCommand::Ps(_) | ContainerCommand::Inspect { .. } | ContainerCommand::Logs { .. }
    );
    let early = match &cmd {
        ContainerCommand::Make(MakeCommand::Run(args)) => Some(fork_monitor(root, args)?),
        _ => None,
    };
    let mut engine = super::engine(root, reads_only)?;
    match cmd {
        ContainerCommand::Make(MakeCommand::Run(args)) => {
            let (image, opts) = args.options()?;
            opts.validate()?;
            if !ensure_image(&mut engine, &image, &args.pull)? {
                return Ok(EXIT_PULL_FAILED);
            }
            let early = early.context("the monitor forked for run")?;
            return run_container(&mut engine, &args, (&image, &opts), early);
        }
        ContainerCommand::Make(MakeCommand::Create(args)) => {
            let (image, opts) = args.options()?;
            opts.validate()?;
            if !ensure_image(&mut engine, &image, &args.pull)? {
                return Ok(EXIT_PULL_FAILED);
            }
            let created = engine.create(&image, &opts)?;
            warn(&created.warnings);
            println!("{}", created.record.id);
        }
        ContainerCommand::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => return start(&mut engine, attach, interactive, detach_keys, &containers),
        ContainerCommand::Attach {
            no_stdin,
            detach_keys,
            sig_proxy,
            container,
        } => {
            let keys = DetachKeys::parse(detach_keys.as_deref().unwrap_or_default())?;
            terminal_for_stdin(!no_stdin && engine.find(&container)?.settings.tty)?;
            let attached = engine.attach(&container, !no_stdin, keys, sig_proxy)?;
            return Ok(exit_status(attached));
        }
        ContainerCommand::Ps(args) => super::ps::ps(&engine, &args)?,
        ContainerCommand::Logs {
            follow,
            since,
            until,
            tail,
            timestamps,
            container,
        } => {
            let query = log_query(follow, since, until, &tail, timestamps)?;
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            engine.logs(&container, &query, &mut out, &mut err)?;
        }
        ContainerCommand::Stop { time, containers } => {
            return stop(&mut engine, time.map(hull_engine::stop_wait), &containers)
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
            detach_keys,
            env,
            workdir,
            user,
            args,
        } => {
            let (container, command) = args.split_first().context("a container is required")?;
            if detach_keys.is_some() && !(interactive && tty) {
                return Err(EngineError::Invalid("--detach-keys needs -i and -t".into()).into());
            }
            terminal_for_stdin(!detach && interactive && tty)?;
            let req = hull_engine::ExecRequest {
                command: command.to_vec(),
                env,
                workdir,
                user,
                interactive,
                tty,
                detach,
                keys: DetachKeys::parse(detach_keys.as_deref().unwrap_or_default())?,
            };
            return Ok(engine.exec(container, &req)?);
        }
        ContainerCommand::Inspect { kernel, names } => inspect(root, &engine, kernel, &names)?,
    }
    Ok(0)
}

/// `start`: in the background, or attached (`-a`, `-i`) to one container.
fn start(
    engine: &mut Engine,
    attach: bool,
    interactive: bool,
    detach_keys: Option<String>,
    containers: &[String],
) -> anyhow::Result<i32> {
    if attach || interactive {
        let [c] = containers else {
            return Err(EngineError::Invalid(
                "you cannot start and attach multiple containers at once".into(),
            )
            .into());
        };
        return start_attached(engine, c, interactive, detach_keys.as_deref());
    }
    if detach_keys.is_some() {
        return Err(EngineError::Invalid("--detach-keys needs -a or -i".into()).into());
    }
    for c in containers {
        let mut monitor = engine.start(c, None)?;
        started(monitor.next_report(), c)?;
        println!("{c}");
    }
    Ok(0)
}

/// What `logs` flags ask for.
fn log_query(
    follow: bool,
    since: Option<String>,
    until: Option<String>,
    tail: &str,
    timestamps: bool,
) -> anyhow::Result<LogQuery> {
    let point = |flag: &str, v: Option<String>| {
        v.as_deref()
            .map(|t| hull_engine::times::parse_point(flag, t))
            .transpose()
    };
    Ok(LogQuery {
        follow,
        since: point("--since", since)?,
        until: point("--until", until)?,
        tail: parse_tail(tail)?,
        timestamps,
    })
}

/// `stop`: together, as docker: one timeout for all; each name printed once stopped, an error
/// for the others, and exit 1 if any failed.
fn stop(
    engine: &mut Engine,
    timeout: Option<Duration>,
    containers: &[String],
) -> anyhow::Result<i32> {
    let refs: Vec<&str> = containers.iter().map(String::as_str).collect();
    let mut failed = false;
    for (c, result) in containers.iter().zip(engine.stop_many(&refs, timeout)?) {
        match result {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("hull: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

/// `inspect`: containers (and images, as docker's), or with `--kernel` the kernel's report.
fn inspect(root: &Path, engine: &Engine, kernel: bool, names: &[String]) -> anyhow::Result<()> {
    if kernel {
        for n in names {
            let view = engine.kernel_view(n)?;
            print!(
                "{}",
                hull_engine::kernel::report(&engine.find(n)?.name, &view)
            );
        }
        return Ok(());
    }
    let mut docs = Vec::new();
    for n in names {
        match engine.inspect(n) {
            Ok(doc) => docs.push(doc),
            Err(EngineError::NoSuchContainer(_)) if !hull_db::path(root).exists() => {
                anyhow::bail!("no such container or image: {n}")
            }
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
    Ok(())
}

/// The exit status of `run` and `create` when the pull of their image failed (the pull has
/// said why, on stderr): docker's for an engine error.
const EXIT_PULL_FAILED: i32 = hull_engine::EXIT_ENGINE;

/// Pulls `image` as `--pull` says; false when the pull failed. The pull runs as a child `hull
/// pull` (its progress bars on this command's stderr, its output too, so that stdout keeps only
/// what `run` and `create` print): a registry client starts threads, and this process must stay
/// single-threaded to fork the container's monitor.
fn ensure_image(engine: &mut Engine, image: &str, pull: &str) -> anyhow::Result<bool> {
    let policy = PullPolicy::parse(pull)?;
    let present = match engine.images()?.resolve(image) {
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
    cmd.arg("--root").arg(engine.root()).arg("pull");
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
pub(super) fn started(report: Option<Report>, id: &str) -> Result<(), EngineError> {
    match report {
        Some(Report::Started(_) | Report::Exited(_)) => Ok(()),
        Some(Report::Failed { code, message }) => Err(EngineError::Exec { code, message }),
        None => Err(EngineError::Monitor {
            id: id.to_string(),
            message: "exited before starting the container".into(),
        }),
    }
}

/// `run`'s monitor, forked before this command opens hull.db ([`Early`]), with the client's
/// end of a foreground run's attach socket pair.
struct EarlyMonitor {
    monitor: Early,
    client: Option<OwnedFd>,
}

fn fork_monitor(root: &Path, args: &RunArgs) -> anyhow::Result<EarlyMonitor> {
    let (client, attach) = if args.detach {
        (None, None)
    } else {
        let size = if args.tty { terminal_size() } else { None };
        let (client, attach) = hull_engine::attach::pair(size)?;
        (Some(client), Some(attach))
    };
    Ok(EarlyMonitor {
        monitor: Early::fork(root, attach, args.own_netns())?,
        client,
    })
}

/// `run` of `image` with `opts` (what `args` mean, parsed once by the caller).
fn run_container(
    engine: &mut Engine,
    args: &RunArgs,
    (image, opts): (&str, &RunOptions),
    early: EarlyMonitor,
) -> anyhow::Result<i32> {
    if args.detach && !args.sig_proxy {
        return Err(EngineError::Invalid("conflicting options: -d and --sig-proxy".into()).into());
    }
    if args.detach && args.detach_keys.is_some() {
        return Err(
            EngineError::Unsupported("--detach-keys with -d (keys are given to attach)").into(),
        );
    }
    let keys = DetachKeys::parse(args.detach_keys.as_deref().unwrap_or_default())?;
    terminal_for_stdin(!args.detach && args.interactive && args.tty)?;
    let EarlyMonitor { monitor, client } = early;
    let created = engine.create_for(image, opts, &monitor)?;
    warn(&created.warnings);
    let vm = created.record.settings.vm.is_some();
    let record = created.record;
    let id = record.id.clone();
    let Some(client) = client else {
        let mut monitor = match engine.start_early(&record, monitor) {
            Ok(m) => m,
            Err(e) => {
                // Nothing runs: a container the user never sees started is not left behind.
                engine.reopen()?;
                let _ = engine.remove_with_volumes(&id, true);
                return Err(e.into());
            }
        };
        let result = started(monitor.next_report(), &id);
        if result.is_err() && opts.rm {
            engine.reopen()?;
            let _ = engine.remove_with_volumes(&id, true);
        }
        result?;
        println!("{id}");
        return Ok(0);
    };
    let session = SessionOptions {
        stdin: args.interactive,
        tty: args.tty,
        keys,
        sig_proxy: args.sig_proxy,
    };
    let result = engine
        .start_early(&record, monitor)
        .and_then(|monitor| engine.wait_attached(monitor, &id, vm, client, session))
        .map(exit_status);
    if result.is_err() {
        engine.reopen()?;
        // Nothing runs: a container the user never saw started is not left behind (its row
        // still says `starting`: its monitor died, or failed, before it ran).
        let never_ran = || {
            engine
                .find(&id)
                .is_ok_and(|r| matches!(r.state, State::Created | State::Starting))
        };
        if opts.rm || never_ran() {
            let _ = engine.remove_with_volumes(&id, true);
        }
    }
    Ok(result?)
}

/// Starts container `id` with this process attached (`start -a`); the exit status to return. The engine is left without its database ([`Engine::reopen`]).
fn attached(engine: &mut Engine, id: &str, session: SessionOptions) -> Result<i32, EngineError> {
    let size = if session.tty { terminal_size() } else { None };
    let vm = engine.find(id)?.settings.vm.is_some();
    let (conn, attach) = hull_engine::attach::pair(size)?;
    let monitor = engine.start_and_close(id, Some(attach))?;
    engine
        .wait_attached(monitor, id, vm, conn, session)
        .map(exit_status)
}

/// `start -a [-i]`.
fn start_attached(
    engine: &mut Engine,
    reference: &str,
    interactive: bool,
    keys: Option<&str>,
) -> anyhow::Result<i32> {
    let keys = DetachKeys::parse(keys.unwrap_or_default())?;
    let record = engine.find(reference)?;
    terminal_for_stdin(interactive && record.settings.tty)?;
    if record.state == State::Running {
        // As docker's: a running container is attached to, not started again.
        return Ok(exit_status(engine.attach(
            &record.id,
            interactive,
            keys,
            true,
        )?));
    }
    let session = SessionOptions {
        stdin: interactive && record.settings.interactive,
        tty: record.settings.tty,
        keys,
        sig_proxy: true,
    };
    Ok(attached(engine, &record.id, session)?)
}

/// docker's check before a session that gives this command's stdin to a terminal (`-it`):
/// a pipe or a file can neither be put in raw mode nor have a window size. Its words and its
/// exit status 1 are docker's (a client error, before anything is made).
fn terminal_for_stdin(needed: bool) -> anyhow::Result<()> {
    if needed && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    Ok(())
}

/// docker's exit status of an attached command: the container's, or 0 once detached.
fn exit_status(attached: Attached) -> i32 {
    match attached {
        Attached::Exited(code) => code,
        Attached::Detached => 0,
    }
}

/// `--tail N` or `all`.
fn parse_tail(text: &str) -> Result<Option<usize>, EngineError> {
    if text == "all" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        EngineError::Invalid(format!(
            "invalid --tail {text:?}: use a number of lines or all"
        ))
    })
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
