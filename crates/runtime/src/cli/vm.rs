//! VM containers: a bundle whose config.json carries the annotation `org.hull.isolation=vm`
//! (as Kata's runtime class asks for its own) runs in a microVM, made and kept by
//! `hull-vm-keeper`, a binary beside this one (or at `HULL_VM_KEEPER`): the runtime is below
//! the engine whose VM parts it needs, so it hands the container's verbs over, and a VM
//! container's directory under `--root` holds the keeper's `vm.json` instead of `state.json`.
//! A pod's sandbox (`io.kubernetes.cri.container-type=sandbox`) stays a container: it only
//! holds the pod's namespaces.
//!
//! The keeper writes its error, if any, to a pipe this process reads (fd 3 in the keeper), so
//! it is logged as this runtime's own errors are (`--log`, where the shim and conmon read it);
//! the keeper's stdio is the container's.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use super::{create, exec, Command as Verb};

pub const ISOLATION: &str = "org.hull.isolation";
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const KEEPER: &str = "hull-vm-keeper";
/// What a VM container's directory holds in place of `state.json` (the keeper's record).
const RECORD: &str = "vm.json";
/// The keeper's descriptor for its error.
const ERROR_FD: i32 = 3;

/// Whether `config` asks for a VM: the annotation, except for a pod's sandbox.
pub fn wants_vm(config: &Value) -> anyhow::Result<bool> {
    let annotations = &config["annotations"];
    match annotations[ISOLATION].as_str() {
        None | Some("container") => Ok(false),
        Some("vm") => Ok(annotations[CONTAINER_TYPE].as_str() != Some("sandbox")),
        Some(other) => bail!("invalid annotation {ISOLATION}={other:?}: container or vm"),
    }
}

fn bundle_wants_vm(bundle: &Path) -> anyhow::Result<bool> {
    let path = bundle.join("config.json");
    // A missing or unreadable config is the runtime's own error to report.
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let Ok(config) = serde_json::from_str::<Value>(&text) else {
        return Ok(false);
    };
    wants_vm(&config)
}

fn is_vm(root: &Path, id: &str) -> bool {
    hull_sys::id::validate_id(id).is_ok() && root.join(id).join(RECORD).is_file()
}

/// True when some container under `root` is a VM's.
pub fn any(root: &Path) -> bool {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join(RECORD).is_file())
}

fn keeper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HULL_VM_KEEPER") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(KEEPER)))
        .unwrap_or_else(|| PathBuf::from(KEEPER))
}

/// The first of `set` that is on, as an error naming it.
fn refuse(set: &[(bool, &str)]) -> anyhow::Result<()> {
    match set.iter().find(|(on, _)| *on) {
        Some((_, name)) => {
            bail!("{name} is not supported for a VM container ({ISOLATION}=vm)")
        }
        None => Ok(()),
    }
}

/// The keeper's command line for a verb on a VM container, or None when `command` is not
/// one (the runtime's own container, or a verb without an id).
fn keeper_args(root: &Path, command: &Verb) -> anyhow::Result<Option<Vec<OsString>>> {
    let mut a: Vec<OsString> = Vec::new();
    let on = |id: &str| is_vm(root, id);
    match command {
        Verb::Create(c) | Verb::Run(create::RunArgs { create: c, .. }) => {
            if !bundle_wants_vm(&c.bundle)? {
                return Ok(None);
            }
            // --no-pivot and --no-new-keyring concern the host side of a container's
            // setup (pivot_root, the session keyring), which a VM has none of.
            refuse(&[
                (c.console_socket.is_some(), "--console-socket (a terminal)"),
                (c.preserve_fds > 0, "--preserve-fds"),
            ])?;
            match command {
                Verb::Run(r) => {
                    a.push("run".into());
                    if r.detach {
                        a.push("--detach".into());
                    }
                    if r.keep {
                        a.push("--keep".into());
                    }
                }
                _ => a.push("create".into()),
            }
            a.extend(["--bundle".into(), c.bundle.clone().into_os_string()]);
            if let Some(p) = &c.pid_file {
                a.extend(["--pid-file".into(), p.clone().into_os_string()]);
            }
            a.push(c.id.clone().into());
        }
        Verb::Start(x) if on(&x.id) => a.extend(["start".into(), x.id.clone().into()]),
        Verb::State(x) if on(&x.id) => a.extend(["state".into(), x.id.clone().into()]),
        Verb::Kill(k) if on(&k.id) => {
            a.push("kill".into());
            if k.all {
                a.push("--all".into());
            }
            a.extend([k.id.clone().into(), k.signal.clone().into()]);
        }
        Verb::Delete(d) if on(&d.id) => {
            a.push("delete".into());
            if d.force {
                a.push("--force".into());
            }
            a.push(d.id.clone().into());
        }
        Verb::Exec(e) if on(&e.id) => a = exec_args(e)?,
        Verb::Ps(p) if on(&p.id) => refuse(&[(true, "ps (its processes are in the guest)")])?,
        Verb::Pause(x) | Verb::Resume(x) if on(&x.id) => {
            refuse(&[(true, "pause and resume")])?;
        }
        Verb::Update(u) if on(&u.id) => refuse(&[(true, "update")])?,
        Verb::Events(e) if on(&e.id) => refuse(&[(true, "events")])?,
        _ => return Ok(None),
    }
    Ok(Some(a))
}

fn exec_args(e: &exec::ExecArgs) -> anyhow::Result<Vec<OsString>> {
    refuse(&[
        (e.tty || e.console_socket.is_some(), "exec with a terminal"),
        (!e.additional_gids.is_empty(), "exec --additional-gids"),
        (e.process_label.is_some(), "exec --process-label"),
        (e.apparmor.is_some(), "exec --apparmor"),
        (e.no_new_privs, "exec --no-new-privs"),
        (!e.cap.is_empty(), "exec --cap"),
        (e.preserve_fds > 0, "exec --preserve-fds"),
        (!e.cgroup.is_empty(), "exec --cgroup"),
    ])?;
    let mut a: Vec<OsString> = vec!["exec".into()];
    let mut opt = |name: &str, v: Option<OsString>| {
        if let Some(v) = v {
            a.extend([name.into(), v]);
        }
    };
    opt("--process", e.process.clone().map(Into::into));
    opt("--cwd", e.cwd.clone().map(Into::into));
    opt("--user", e.user.clone().map(Into::into));
    opt("--pid-file", e.pid_file.clone().map(Into::into));
    for env in &e.env {
        a.extend(["--env".into(), env.into()]);
    }
    if e.detach {
        a.push("--detach".into());
    }
    a.push(e.id.clone().into());
    a.push("--".into());
    a.extend(e.command.iter().map(Into::into));
    Ok(a)
}

/// Runs the keeper for `command` when it is a VM container's; its exit status.
pub fn dispatch(root: &Path, command: &Verb) -> anyhow::Result<Option<i32>> {
    match keeper_args(root, command)? {
        Some(args) => run_keeper(root, &args).map(Some),
        None => Ok(None),
    }
}

/// The VM containers' states under `root`, for `list`.
pub fn states(root: &Path) -> anyhow::Result<Vec<Value>> {
    let out = Command::new(keeper_path())
        .arg("--root")
        .arg(root)
        .arg("list")
        .output()
        .with_context(|| format!("running {}", keeper_path().display()))?;
    if !out.status.success() {
        bail!(
            "{KEEPER} list: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn run_keeper(root: &Path, args: &[OsString]) -> anyhow::Result<i32> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let path = keeper_path();
    let mut cmd = Command::new(&path);
    cmd.arg("--error-fd")
        .arg(ERROR_FD.to_string())
        .arg("--root")
        .arg(root)
        .args(args);
    let raw = w.as_raw_fd();
    // SAFETY: between fork and exec only dup2 and fcntl, async-signal-safe, on a descriptor
    // the parent keeps open.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if raw == ERROR_FD {
                libc::fcntl(raw, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(raw, ERROR_FD) == ERROR_FD
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "VM containers ({ISOLATION}=vm) need {KEEPER}: none at {} (it is installed \
             beside hull-runtime, or named by HULL_VM_KEEPER)",
            path.display()
        )
    })?;
    drop(w);
    let error = read_all(r);
    let status = child.wait().context("waiting for the keeper")?;
    if !error.trim().is_empty() {
        bail!("{}", error.trim());
    }
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn read_all(fd: OwnedFd) -> String {
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_annotation_picks_a_vm_except_for_a_sandbox() {
        let with = |a: Value| json!({ "annotations": a });
        assert!(!wants_vm(&json!({})).unwrap());
        assert!(!wants_vm(&with(json!({ISOLATION: "container"}))).unwrap());
        assert!(wants_vm(&with(json!({ISOLATION: "vm"}))).unwrap());
        let sandbox = with(json!({ISOLATION: "vm", CONTAINER_TYPE: "sandbox"}));
        assert!(!wants_vm(&sandbox).unwrap());
        let app = with(json!({ISOLATION: "vm", CONTAINER_TYPE: "container"}));
        assert!(wants_vm(&app).unwrap());
        let err = wants_vm(&with(json!({ISOLATION: "kata"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid annotation org.hull.isolation=\"kata\": container or vm"
        );
    }
}
