//! Registry credentials from a docker-style `config.json` (`auths` entries with `auth` or
//! `username`/`password`, or an `identitytoken`/`registrytoken`), as docker, podman and skopeo
//! read them. The registry's challenge decides between basic and bearer-token auth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::RegistryError;

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The config file hull reads: `explicit`, else $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json,
/// ~/.docker/config.json.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io"
        || registry == "index.docker.io"
        || registry == "registry-1.docker.io"
    {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
        keys.push("docker.io".into());
    }
    keys
}

/// Credentials for `registry`, anonymous when the file or its entry is absent.
pub fn credentials(registry: &str, explicit: Option<&Path>) -> Result<RegistryAuth, RegistryError> {
    let Some(path) = config_path(explicit) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(RegistryAuth::Anonymous)
        }
        Err(e) => return Err(RegistryError::Auth(format!("{}: {e}", path.display()))),
    };
    let bad = |reason: String| RegistryError::Auth(format!("{}: {reason}", path.display()));
    let cfg: ConfigFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let keys = keys_for(registry);
    if let Some(h) = keys.iter().find_map(|k| cfg.cred_helpers.get(k)) {
        return Err(bad(format!(
            "credential helper {h:?} for {registry} is not supported; put the credentials in auths"
        )));
    }
    let Some(entry) = keys.iter().find_map(|k| {
        cfg.auths
            .get(k.trim_end_matches('/'))
            .or_else(|| cfg.auths.get(k.as_str()))
    }) else {
        if let Some(store) = &cfg.creds_store {
            return Err(bad(format!(
                "credential store {store:?} is not supported; put the credentials for {registry} in auths"
            )));
        }
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(t) = entry
        .registrytoken
        .as_ref()
        .or(entry.identitytoken.as_ref())
    {
        return Ok(RegistryAuth::Bearer(t.clone()));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(u.clone(), p.clone()));
    }
    if let Some(a) = &entry.auth {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|e| bad(format!("auths.{registry}.auth is not base64: {e}")))?;
        let s = String::from_utf8(raw)
            .map_err(|_| bad(format!("auths.{registry}.auth is not UTF-8")))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| bad(format!("auths.{registry}.auth is not user:password")))?;
        return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_entries() {
        let dir = std::env::temp_dir().join(format!("hull-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"r.example":{"registrytoken":"tok"}}}"#,
        )
        .unwrap();
        assert!(matches!(credentials("127.0.0.1:5000", Some(&f)).unwrap(),
            RegistryAuth::Basic(u, p) if u == "user" && p == "pass"));
        assert!(
            matches!(credentials("r.example", Some(&f)).unwrap(), RegistryAuth::Bearer(t) if t == "tok")
        );
        assert!(matches!(
            credentials("other", Some(&f)).unwrap(),
            RegistryAuth::Anonymous
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
