//! OCI hooks: programs run at points of the lifecycle with the container's state JSON on stdin,
//! their own args and env, and a timeout after which they are killed.
//!
//! A hook without `env` gets what runc gives it: a hook the runtime runs on the host (prestart,
//! createRuntime, poststart, poststop) inherits the runtime's environment; one run in the
//! container (createContainer, startContainer) gets the container process's environment, which
//! is runc's init's own. An `env`, even an empty one, is the whole environment.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook {path}: {source}")]
    Spawn {
        stage: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{stage} hook {path} failed: {status}{stderr}")]
    Failed {
        stage: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{stage} hook {path} timed out after {secs}s")]
    Timeout {
        stage: &'static str,
        path: String,
        secs: i64,
    },
}

/// Whether the container's setup stops midway for hooks: prestart and createRuntime run by the
/// runtime while the process waits before pivot_root, createContainer and startContainer in the
/// process with the state JSON the runtime sends it then. Without any, both sides skip that
/// exchange (a round trip of the two processes on every create).
pub fn setup_sync(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        #[allow(deprecated)]
        let prestart = h.prestart().is_some();
        prestart
            || h.create_runtime().is_some()
            || h.create_container().is_some()
            || h.start_container().is_some()
    })
}

/// Where hooks run beyond what each hook says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The environment of a hook without `env`: None inherits the runtime's own.
    pub env: Option<&'a [String]>,
    /// The working directory (None: the runtime's own). runc runs the create-time hooks in the
    /// bundle (it changes to it) and the createContainer hooks in the root file system.
    pub cwd: Option<&'a Path>,
}

/// Runs `hooks` in order; the first failure stops the sequence (prestart, createRuntime,
/// createContainer, startContainer: the operation fails).
pub fn run(
    stage: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
    ctx: &Context,
) -> Result<(), HookError> {
    for hook in hooks {
        run_one(stage, hook, state_json, ctx)?;
    }
    Ok(())
}

/// Runs every hook of `hooks` whatever the others do, and returns the failures (poststart,
/// poststop: "the runtime MUST log a warning, but the remaining hooks and lifecycle continue as
/// if the hook had succeeded").
pub fn run_all(
    stage: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
    ctx: &Context,
) -> Vec<HookError> {
    hooks
        .iter()
        .filter_map(|hook| run_one(stage, hook, state_json, ctx).err())
        .collect()
}

fn run_one(
    stage: &'static str,
    hook: &Hook,
    state_json: &[u8],
    ctx: &Context,
) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut command = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        command.arg0(argv0).args(rest);
    }
    if let Some(env) = hook.env().as_deref().or(ctx.env) {
        command.env_clear();
        for entry in env {
            if let Some((key, value)) = entry.split_once('=') {
                command.env(key, value);
            }
        }
    }
    if let Some(cwd) = ctx.cwd {
        command.current_dir(cwd);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let spawn_err = |source| HookError::Spawn {
        stage,
        path: path.clone(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its input: that is not a failure of ours.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| (t, Instant::now() + Duration::from_secs(t.unsigned_abs())));
    let mut pause = Duration::from_micros(200);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            break status;
        }
        if let Some((secs, at)) = deadline {
            if Instant::now() >= at {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout { stage, path, secs });
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let stderr = stderr.trim();
    Err(HookError::Failed {
        stage,
        path,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().last().unwrap_or_default())
        },
    })
}

#[cfg(test)]
mod tests {
    use super::setup_sync;

    fn spec(hooks: serde_json::Value) -> oci_spec::runtime::Spec {
        let mut v = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        if !hooks.is_null() {
            v["hooks"] = hooks;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_setup_hooks_stop_the_setup() {
        let hook = serde_json::json!([{"path": "/bin/true"}]);
        assert!(!setup_sync(&spec(serde_json::Value::Null)));
        assert!(!setup_sync(&spec(serde_json::json!({}))));
        for late in ["poststart", "poststop"] {
            assert!(
                !setup_sync(&spec(serde_json::json!({late: hook}))),
                "{late}"
            );
        }
        for stage in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
        ] {
            assert!(
                setup_sync(&spec(serde_json::json!({stage: hook}))),
                "{stage}"
            );
        }
    }
}
