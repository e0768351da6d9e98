//! runc's command line: global options, one subcommand per lifecycle operation, errors reported
//! as one log line as runc writes them (see `log`), exit status 1 on failure (255 for `exec`, whose
//! own status is the process's, and whose errors read "exec failed: ...", as runc's).

mod create;
mod events;
mod exec;
mod lifecycle;
mod log;
mod query;
mod spec;
mod update;
mod vm;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use hull_runtime::Runtime;
use log::{LogFormat, Logger};

#[derive(Debug, Parser)]
#[command(
    name = "hull-runtime",
    version,
    about = "An OCI runtime with runc's command line",
    disable_help_subcommand = true
)]
struct Cli {
    /// Directory for the state of containers.
    #[arg(long, global = true, default_value = "/run/hull-runtime")]
    root: PathBuf,
    /// Also write log messages to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd (refused: there is no systemd manager here).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container whose process waits for `start`.
    Create(create::CreateArgs),
    /// Create and start a container; wait for it unless --detach.
    Run(create::RunArgs),
    /// Start a created container.
    Start(lifecycle::IdArg),
    /// Print the state of a container as JSON.
    State(lifecycle::IdArg),
    /// List containers.
    List(query::ListArgs),
    /// Send a signal to a container's process (or all its processes).
    Kill(lifecycle::KillArgs),
    /// Remove a container and its resources.
    Delete(lifecycle::DeleteArgs),
    /// List the processes of a container.
    Ps(query::PsArgs),
    /// Run a new process in a running container.
    Exec(Box<exec::ExecArgs>),
    /// Freeze all processes of a container.
    Pause(lifecycle::IdArg),
    /// Thaw a paused container.
    Resume(lifecycle::IdArg),
    /// Print container events and resource statistics.
    Events(events::EventsArgs),
    /// Change the resource limits of a running container.
    Update(Box<update::UpdateArgs>),
    /// Write a default config.json.
    Spec(spec::SpecArgs),
    /// Print the features this runtime implements, as JSON.
    Features,
}

/// Runs the command line; the process's exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // One line, as every other error: callers keep the last line of a runtime's stderr.
            let text = err.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "hull-runtime: {}",
                message.join(" ").trim_start_matches("error: ")
            );
            return 1;
        }
        Err(err) => {
            // --help, --version: clap's own text on stdout.
            let _ = err.print();
            return 0;
        }
    };
    let logger = Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    logger.debug(&format!("{:?}", std::env::args().collect::<Vec<_>>()));
    let exec = matches!(cli.command, Command::Exec(_));
    match dispatch(cli, &logger) {
        Ok(code) => code,
        // The reader of our output went away (`hull-runtime list | head -1`): end as SIGPIPE
        // ends runc, quietly, with the shell's status for it.
        Err(err) if is_broken_pipe(&err) => 128 + libc::SIGPIPE,
        Err(err) if exec => {
            logger.error(&format!("exec failed: {}", message(&err)));
            255
        }
        Err(err) => {
            logger.error(&message(&err));
            1
        }
    }
}

/// Writes one line to stdout. Rust ignores SIGPIPE, so a closed pipe is an error here
/// (`println!` would panic on it); `main` ends quietly on it.
pub(crate) fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each cause once: most errors already name their
/// cause in their own text.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

fn dispatch(cli: Cli, logger: &Logger) -> anyhow::Result<i32> {
    if cli.systemd_cgroup {
        let why = if std::path::Path::new("/run/systemd/system").exists() {
            "systemd is running, but hull-runtime manages cgroups only through cgroupfs"
        } else {
            "no systemd manager is running on this host"
        };
        anyhow::bail!("--systemd-cgroup is not supported: {why}");
    }
    // Hook failures the runtime spec makes warnings go where runc's warnings go.
    let warn = logger.clone();
    let runtime = Runtime::new(&cli.root).with_warnings(move |w| warn.warn(w));
    if let Some(code) = vm::dispatch(&cli.root, &cli.command)? {
        return Ok(code);
    }
    match cli.command {
        Command::Create(args) => create::create(&runtime, args, logger).map(|()| 0),
        Command::Run(args) => create::run(&runtime, args, logger),
        Command::Start(args) => lifecycle::start(&runtime, &args.id).map(|()| 0),
        Command::State(args) => query::state(&runtime, &args.id).map(|()| 0),
        Command::List(args) => query::list(&runtime, &cli.root, args).map(|()| 0),
        Command::Kill(args) => lifecycle::kill(&runtime, args).map(|()| 0),
        Command::Delete(args) => lifecycle::delete(&runtime, args).map(|()| 0),
        Command::Ps(args) => query::ps(&runtime, args).map(|()| 0),
        Command::Exec(args) => exec::exec(&runtime, *args),
        Command::Pause(args) => lifecycle::pause(&runtime, &args.id).map(|()| 0),
        Command::Resume(args) => lifecycle::resume(&runtime, &args.id).map(|()| 0),
        Command::Events(args) => events::events(&runtime, args).map(|()| 0),
        Command::Update(args) => update::update(&runtime, *args, logger).map(|()| 0),
        Command::Spec(args) => spec::spec(args).map(|()| 0),
        Command::Features => spec::features().map(|()| 0),
    }
}
