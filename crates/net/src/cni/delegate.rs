//! Delegating IPAM to another CNI plugin, as the spec says: find its binary on CNI_PATH, run
//! it with the same environment (CNI_COMMAND as given) and the same config on stdin, and
//! read its result or error.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::config::Env;
use super::error::{self, CniError};

fn find(env: &Env, plugin: &str) -> Result<PathBuf, CniError> {
    if plugin.contains('/') {
        return Err(CniError::new(
            error::INVALID_CONFIG,
            format!("ipam type {plugin:?} must be a plugin name, not a path"),
        ));
    }
    env.path
        .iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                error::INVALID_CONFIG,
                format!("ipam plugin {plugin:?} not found on CNI_PATH"),
            )
        })
}

/// Runs the IPAM plugin with `command` and returns its parsed stdout (Null when empty).
pub fn run(env: &Env, plugin: &str, command: &str, stdin: &[u8]) -> Result<Value, CniError> {
    let bin = find(env, plugin)?;
    let failed = |m: String| CniError::new(error::DELEGATE_FAILED, m);
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run ipam plugin {}: {e}", bin.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .map_err(|e| failed(format!("cannot write to ipam plugin {plugin}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("ipam plugin {plugin}: {e}")))?;
    let value: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout)
            .map_err(|e| failed(format!("ipam plugin {plugin} printed invalid JSON: {e}")))?
    };
    if !out.status.success() {
        let msg = value
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(failed(format!(
            "ipam plugin {plugin} {command} failed: {msg}"
        )));
    }
    Ok(value)
}
