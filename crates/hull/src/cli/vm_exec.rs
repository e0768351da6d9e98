//! The process flags `hull vm run -- CMD` and `hull vm exec` share, and `hull vm exec VM CMD`:
//! another process in a running microVM, through its API socket (`vm_api`), with stdout and
//! stderr apart, stdin with -i, a terminal with -t, signals passed on, and its exit code as
//! hull's.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context};
use clap::Args;
use hull_vmm::proto::{Decoder, Message, ProcessSpec};

use hull_vmm::launch::API_SOCKET;
use hull_vmm::stdio::{forward_signals, forward_stdin, raw_terminal, send_window_size, ToGuest};

use super::vm_api;

/// The PATH a command gets when --env sets none (docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a command in the guest runs.
#[derive(Debug, Clone, Args)]
pub struct ProcessFlags {
    /// Keep the command's stdin open and pass hull's stdin to it
    #[arg(short, long)]
    pub interactive: bool,
    /// Run the command on a terminal (stdout and stderr are then one stream; hull's own
    /// terminal, if stdin is one, goes raw and passes its size on)
    #[arg(short, long)]
    pub tty: bool,
    /// The command's environment (NAME=value), more than once
    #[arg(short, long = "env", value_name = "NAME=value")]
    pub env: Vec<String>,
    /// The command's working directory
    #[arg(short = 'w', long, default_value = "/")]
    pub workdir: String,
    /// The command's user: USER[:GROUP], names (looked up in the guest root's /etc/passwd and
    /// /etc/group) or numbers
    #[arg(short, long, default_value = "0:0")]
    pub user: String,
}

impl ProcessFlags {
    /// Whether any flag differs from its default (they only mean something with a command).
    pub fn given(&self) -> bool {
        self.interactive
            || self.tty
            || !self.env.is_empty()
            || self.workdir != "/"
            || self.user != "0:0"
    }

    /// The process spec of `command` under these flags.
    pub fn spec(&self, command: Vec<String>) -> anyhow::Result<ProcessSpec> {
        let mut env = self.env.clone();
        if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
            bail!("--env {bad}: give NAME=value");
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.into());
        }
        if self.user.is_empty() {
            bail!("--user: give USER[:GROUP]");
        }
        Ok(ProcessSpec {
            args: command,
            env,
            cwd: self.workdir.clone(),
            terminal: self.tty,
            user: Some(self.user.clone()),
            ..ProcessSpec::default()
        })
    }
}

/// The API socket of `vm`: a path when it has a slash, else the name of a `hull vm run --name`.
fn socket(root: &Path, vm: &str) -> PathBuf {
    if vm.contains('/') {
        PathBuf::from(vm)
    } else {
        vm_api::socket_dir(root, vm).join(API_SOCKET)
    }
}

/// Runs `command` in microVM `vm`; hull's exit code (the command's).
pub fn exec(
    root: &Path,
    vm: &str,
    flags: &ProcessFlags,
    command: Vec<String>,
) -> anyhow::Result<i32> {
    if command.is_empty() {
        bail!("hull vm exec needs a command");
    }
    let spec = flags.spec(command)?;
    let path = socket(root, vm);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no running microVM {vm:?} (nothing answers on {})",
            path.display()
        )
    })?;
    let writer = Mutex::new(stream.try_clone().context("cannot clone the socket")?);
    let to: ToGuest = Arc::new(move |m: &Message| {
        // The VM going away shows on the reading side.
        let _ = writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&m.encode());
    });
    // The id is the VMM's to choose; 0 here stands for "this connection's process".
    forward_signals(to.clone(), 0, flags.tty).context("cannot forward signals")?;
    let raw = raw_terminal(flags.tty).context("cannot make the terminal raw")?;
    to(&Message::Exec { id: 0, spec });
    if flags.tty {
        send_window_size(&to, 0);
    }
    forward_stdin(to, 0, flags.interactive).context("cannot start the stdin thread")?;
    let code = relay(stream);
    drop(raw);
    code
}

/// Prints the process's output until its exit.
fn relay(mut stream: UnixStream) -> anyhow::Result<i32> {
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(m) = decoder.next().context("bad frame from the VMM")? {
            match m {
                Message::Stdout { data, .. } => {
                    let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
                }
                Message::Stderr { data, .. } => {
                    let _ = stderr.write_all(&data).and_then(|()| stderr.flush());
                }
                Message::Error { message, .. } => eprintln!("hull vm exec: {message}"),
                Message::Exit { status, .. } => return Ok(status.code()),
                _ => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            Ok(_) | Err(_) => bail!("the microVM stopped before the process reported its exit"),
        }
    }
}
