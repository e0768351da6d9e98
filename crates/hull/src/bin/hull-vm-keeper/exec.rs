//! `exec` into a VM container: the process (runc's `--process` file, or the container's own
//! with the command line's overrides) sent as an exec session over the keeper's control
//! socket; this process's stdio relayed to it. Detached, a child holds the session and exits
//! with the process's status: its pid goes to `--pid-file`, as the exec'd process's does with
//! runc, so containerd's shim and conmon wait on it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use hull_engine::vm::control::{Request, SOCKET};
use hull_vmm::proto::{Decoder, Message, ProcessSpec, MAX_CHUNK};
use nix::fcntl::OFlag;
use nix::unistd::{fork, ForkResult};
use serde_json::Value;

use crate::record::{self, Record};

/// The session's id for its process: the keeper gives it the real one.
const SESSION_ID: u32 = 1;

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(long)]
    process: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(long)]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The OCI process to run: the file's, or the container's with the overrides.
fn process(config: &Value, args: &ExecArgs) -> anyhow::Result<Value> {
    if let Some(path) = &args.process {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("{}", path.display()));
    }
    if args.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let mut p = config["process"].clone();
    p["args"] = serde_json::json!(args.command);
    p["terminal"] = Value::Bool(false);
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for entry in &args.env {
        let key = entry.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(entry.clone());
    }
    p["env"] = serde_json::json!(env);
    if let Some(cwd) = &args.cwd {
        p["cwd"] = Value::String(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let num = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("--user {user:?}: numeric UID[:GID] only"))
        };
        p["user"] = serde_json::json!({"uid": num(uid)?, "gid": num(gid)?});
    }
    Ok(p)
}

/// The guest's form of the process, with the container's seccomp filter.
fn spec(root: &Path, rec: &Record, args: &ExecArgs) -> anyhow::Result<ProcessSpec> {
    let path = rec.bundle.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: Value = serde_json::from_str(&text)?;
    let p = process(&config, args)?;
    if p["terminal"].as_bool() == Some(true) {
        bail!(
            "exec with a terminal into a VM container (org.hull.isolation=vm) is not supported yet"
        );
    }
    let mut spec = hull_engine::vm::process_of(&p);
    spec.seccomp = crate::vm::seccomp(root, &config)?;
    Ok(spec)
}

pub fn exec(root: &Path, args: ExecArgs, error_fd: Option<i32>) -> anyhow::Result<i32> {
    let rec = Record::load(root, &args.id)?;
    if rec.status(root) != "running" {
        bail!("cannot exec in a container that is {}", rec.status(root));
    }
    let spec = spec(root, &rec, &args)?;
    let dir = record::dir(root, &args.id);
    let mut conn = hull_engine::vm::connect_in(&dir, SOCKET)?;
    let mut first = Request::Exec.encode().into_bytes();
    first.extend(
        Message::Exec {
            id: SESSION_ID,
            spec,
        }
        .encode(),
    );
    conn.write_all(&first)
        .context("writing to the VM's control socket")?;
    if !args.detach {
        return relay(conn, None);
    }
    let (started_r, started_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // SAFETY: single-threaded so far: the child may go on running Rust code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(started_r);
            crate::close_error_fd(error_fd);
            let code = relay(conn, Some(File::from(started_w))).unwrap_or_else(|e| {
                crate::report(None, &format!("{e:#}"));
                255
            });
            // The forked child ends here: returning would run the parent's path twice.
            #[allow(clippy::exit)]
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(started_w);
            let mut text = String::new();
            let _ = File::from(started_r).read_to_string(&mut text);
            if text != "ok" {
                let _ = nix::sys::wait::waitpid(child, None);
                bail!(
                    "{}",
                    if text.is_empty() {
                        "the exec'd process did not start"
                    } else {
                        &text
                    }
                );
            }
            if let Some(path) = &args.pid_file {
                std::fs::write(path, child.as_raw().to_string())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(0)
        }
    }
}

/// The session's frames to this process's stdout and stderr until the exit; `started` hears
/// "ok" once the process runs, or why it could not.
fn relay(mut conn: UnixStream, mut started: Option<File>) -> anyhow::Result<i32> {
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut decoder = Decoder::default();
    let mut error: Option<String> = None;
    let mut buf = vec![0u8; MAX_CHUNK];
    // Started: the stdin forwarder runs.
    let mut stdin = false;
    loop {
        while let Some(m) = decoder.next().context("the exec session")? {
            match m {
                Message::Started { .. } => {
                    if let Some(mut s) = started.take() {
                        let _ = s.write_all(b"ok");
                    }
                    if !stdin {
                        stdin = true;
                        hull_engine::vm::exec::forward_stdin(&conn)?;
                    }
                }
                Message::Stdout { data, .. } => {
                    let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
                }
                Message::Stderr { data, .. } => {
                    let _ = stderr.write_all(&data).and_then(|()| stderr.flush());
                }
                Message::Error { message, .. } => error = Some(message),
                Message::Exit { status, .. } => {
                    return match (error, started) {
                        (Some(message), Some(mut s)) => {
                            let _ = s.write_all(message.as_bytes());
                            Ok(status.code())
                        }
                        (Some(message), None) if !stdin => bail!("{message}"),
                        _ => Ok(status.code()),
                    };
                }
                _ => {}
            }
        }
        match conn.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            // The VM ended (its main process did) and took the process along, as a
            // container's end kills what was exec'd in it: SIGKILL's status.
            _ if stdin => return Ok(128 + libc::SIGKILL),
            _ => bail!("the VM ended before the exec'd process started"),
        }
    }
}
