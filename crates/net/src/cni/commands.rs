//! Dispatch on CNI_COMMAND; VERSION and DEL here, ADD and CHECK in their own modules.

use serde_json::{json, Value};

use super::config::{Config, Env};
use super::delegate;
use super::error::{self, CniError};
use crate::attach;
use crate::engine::{Net, NetOptions};

/// Runs the command named by CNI_COMMAND; `Ok(Some(json))` is printed on stdout.
pub fn run(env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == "VERSION" {
        return Ok(Some(version(stdin)));
    }
    let cfg = Config::parse(stdin)?;
    match env.command.as_str() {
        "ADD" => super::add::add(env, &cfg, stdin).map(Some),
        "DEL" => del(env, &cfg, stdin).map(|()| None),
        "CHECK" => super::check::check(env, &cfg, stdin).map(|()| None),
        other => Err(CniError::new(
            error::INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not supported (ADD, DEL, CHECK, VERSION)"),
        )),
    }
}

fn version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|v| super::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.0.0".to_string());
    json!({ "cniVersion": asked, "supportedVersions": super::SUPPORTED_VERSIONS })
}

pub(super) fn open(cfg: &Config) -> Result<Net, CniError> {
    let opts = NetOptions {
        ip_forward: cfg.is_gateway && cfg.ip_masq,
        ..NetOptions::default()
    };
    Ok(Net::open_with(&cfg.root(), opts)?)
}

pub(super) fn invalid(msg: String) -> CniError {
    CniError::new(error::INVALID_CONFIG, msg)
}

fn del(env: &Env, cfg: &Config, raw: &[u8]) -> Result<(), CniError> {
    env.require("CONTAINERID", &env.container_id)?;
    env.require("IFNAME", &env.ifname)?;
    let mut net = open(cfg)?;
    attach::detach(net.conn(), &env.container_id, &env.ifname)?;
    if let Some(plugin) = cfg.delegated_ipam() {
        delegate::run(env, &plugin, "DEL", raw)?;
    }
    Ok(())
}
