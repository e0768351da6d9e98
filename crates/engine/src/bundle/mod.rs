//! A container's OCI bundle config from its image's config and the user's flags: a pure
//! function (no file system, no root), so each rule docker and podman follow is unit-tested.

pub mod defaults;
pub mod resources;
pub mod seccomp;
pub mod security;
pub mod user;

use std::path::Path;

use oci_spec::image::Config as ImageConfig;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::options::{Network, RunOptions};
use defaults::HostLimits;
use user::ResolvedUser;

/// The PATH a container gets when its image sets none (docker's).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the config is made from.
#[derive(Debug)]
pub struct BundleInput<'a> {
    /// The image's runtime config (None: an image without one, as `import` makes).
    pub image: Option<&'a ImageConfig>,
    pub opts: &'a RunOptions,
    /// `-e` and `--env-file` entries, as `K=V`, in order.
    pub env: &'a [String],
    pub user: &'a ResolvedUser,
    pub hostname: &'a str,
    /// The root file system, relative to the bundle.
    pub rootfs: &'a str,
    /// The directory holding the container's `hosts`, `hostname` and `resolv.conf`.
    pub etc_dir: &'a Path,
    pub host: HostLimits,
    /// Its capabilities ([`security::capabilities`]).
    pub caps: &'a [String],
    /// The device nodes it gets (`--device`, or the host's with `--privileged`).
    pub devices: &'a [crate::run_flags::DeviceSpec],
    /// `--init`: the host's init binary, run as PID 1 in front of the command.
    pub init: Option<&'a Path>,
    /// The user's and the image's mounts (`-v`, `--mount`, `--tmpfs`, `Volumes`), as
    /// [`crate::volumes::plan`] resolved them, in order.
    pub mounts: &'a [Value],
}

/// The generated config and what the engine keeps beside it.
#[derive(Debug)]
pub struct Bundle {
    pub config: Value,
    /// The command line the container runs (entrypoint + cmd).
    pub args: Vec<String>,
    pub stop_signal: String,
}

/// The command: `--entrypoint` (or the image's Entrypoint) followed by the command given after
/// the image (or the image's Cmd; an `--entrypoint` drops the image's Cmd, as docker does).
pub fn command(image: Option<&ImageConfig>, opts: &RunOptions) -> Result<Vec<String>, EngineError> {
    let image_entrypoint = image
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let image_cmd = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let entrypoint = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image_entrypoint,
    };
    let cmd = if !opts.command.is_empty() {
        opts.command.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new()
    } else {
        image_cmd
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(EngineError::Invalid(
            "no command specified: the image has no Entrypoint or Cmd; give one after the image"
                .into(),
        ));
    }
    Ok(args)
}

/// The environment: PATH and HOSTNAME, then the image's, then the flags' (a later value of a
/// variable replaces an earlier one in place), then HOME from the user's passwd entry.
pub fn environment(
    image: Option<&ImageConfig>,
    flags: &[String],
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env: Vec<String> = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={hostname}")];
    let image_env = image.and_then(|c| c.env().clone()).unwrap_or_default();
    for entry in image_env.into_iter().chain(flags.iter().cloned()) {
        let key = entry.split('=').next().unwrap_or_default().to_string();
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The config.json of a container.
pub fn generate(input: BundleInput<'_>) -> Result<Bundle, EngineError> {
    let opts = input.opts;
    let args = command(input.image, opts)?;
    let mut env = environment(input.image, input.env, input.hostname, &input.user.home);
    // A terminal's programs need to know its kind; docker and podman say xterm.
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| input.image.and_then(|c| c.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "the working directory {cwd:?} is invalid: it needs to be an absolute path"
        )));
    }
    let stop_signal = opts
        .stop_signal
        .clone()
        .or_else(|| input.image.and_then(|c| c.stop_signal().clone()))
        .unwrap_or_else(|| "SIGTERM".to_string());
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if opts.network != Network::Host {
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = defaults::mounts();
    for name in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(json!({
            "destination": format!("/etc/{name}"),
            "type": "bind",
            "source": input.etc_dir.join(name),
            "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"],
        }));
    }
    mounts.extend(input.mounts.iter().cloned());
    let mut process_args = args.clone();
    if let Some(init) = input.init {
        // As docker's docker-init: `init -- CMD`, the binary bound read-only from the host.
        mounts.push(json!({
            "destination": crate::run_flags::INIT_PATH,
            "type": "bind",
            "source": init,
            "options": ["rbind", "rprivate", "ro", "nosuid", "nodev"],
        }));
        process_args = [crate::run_flags::INIT_PATH.to_string(), "--".into()]
            .into_iter()
            .chain(args.iter().cloned())
            .collect();
    }
    let linux = json!({
        "namespaces": namespaces,
        "resources": resources::resources(opts),
        "maskedPaths": defaults::MASKED_PATHS,
        "readonlyPaths": defaults::READONLY_PATHS,
    });
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": opts.tty,
            "user": {
                "uid": input.user.uid,
                "gid": input.user.gid,
                "additionalGids": input.user.additional_gids,
            },
            "args": process_args,
            "env": env,
            "cwd": cwd,
            "rlimits": resources::rlimits(input.host, opts),
        },
        "root": {"path": input.rootfs, "readonly": false},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    security::apply(&mut config, opts, input.caps, input.devices);
    // The runtime reads it as a Spec: a config it would refuse is an engine bug, caught here.
    <oci_spec::runtime::Spec as serde::Deserialize>::deserialize(&config)
        .map_err(|e| EngineError::Invalid(format!("generated config.json is invalid: {e}")))?;
    Ok(Bundle {
        config,
        args,
        stop_signal,
    })
}

/// The text of config.json: `config` with `seccomp` as its `linux.seccomp` (the section comes
/// as JSON text, [`crate::seccomp_cache`], and is written as it is). Compact, as podman's:
/// only programs read it.
pub fn config_text(config: &Value, seccomp: Option<&RawValue>) -> serde_json::Result<String> {
    // Never a confined container written unconfined.
    if seccomp.is_some() && !config.get("linux").is_some_and(Value::is_object) {
        return Err(serde::ser::Error::custom(
            "the config has no linux object to hold its seccomp section",
        ));
    }
    serde_json::to_string(&WithSeccomp {
        config,
        seccomp,
        depth: 0,
    })
}

/// `config` serialized with `seccomp` added to its `linux` object (depth 1).
struct WithSeccomp<'a> {
    config: &'a Value,
    seccomp: Option<&'a RawValue>,
    depth: u8,
}

impl serde::Serialize for WithSeccomp<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (Value::Object(map), Some(seccomp)) = (self.config, self.seccomp) else {
            return self.config.serialize(s);
        };
        let mut out = s.serialize_map(None)?;
        for (k, v) in map {
            if self.depth == 0 && k == "linux" {
                let linux = WithSeccomp {
                    config: v,
                    seccomp: Some(seccomp),
                    depth: 1,
                };
                out.serialize_entry(k, &linux)?;
            } else {
                out.serialize_entry(k, v)?;
            }
        }
        if self.depth == 1 {
            out.serialize_entry("seccomp", seccomp)?;
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_puts_seccomp_under_linux() {
        let config = json!({"ociVersion": "1.0.2", "linux": {"namespaces": []}, "z": {"linux": 1}});
        let section =
            RawValue::from_string(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#.into()).unwrap();
        let text = config_text(&config, Some(&section)).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(back["linux"]["namespaces"], json!([]));
        assert_eq!(back["z"], json!({"linux": 1}));
        assert_eq!(back["ociVersion"], "1.0.2");
        assert_eq!(config_text(&config, None).unwrap(), config.to_string());
        assert!(config_text(&json!({"process": {}}), Some(&section)).is_err());
    }

    fn image(json: &str) -> ImageConfig {
        serde_json::from_str(json).unwrap()
    }

    fn root() -> ResolvedUser {
        ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }

    fn caps() -> Vec<String> {
        defaults::CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    fn gen(img: Option<&ImageConfig>, opts: &RunOptions, env: &[String]) -> Bundle {
        gen_with(img, opts, env, &[])
    }

    fn gen_with(
        img: Option<&ImageConfig>,
        opts: &RunOptions,
        env: &[String],
        mounts: &[Value],
    ) -> Bundle {
        let user = root();
        generate(BundleInput {
            image: img,
            opts,
            env,
            user: &user,
            hostname: "abc",
            rootfs: "merged",
            etc_dir: Path::new("/x/etc"),
            host: HostLimits {
                nofile_hard: 20000,
                nproc_hard: u64::MAX,
            },
            caps: &caps(),
            devices: &[],
            init: None,
            mounts,
        })
        .unwrap()
    }

    #[test]
    fn entrypoint_and_cmd() {
        let img = image(r#"{"Entrypoint": ["/init"], "Cmd": ["serve", "-v"]}"#);
        let none = RunOptions::default();
        assert_eq!(
            command(Some(&img), &none).unwrap(),
            ["/init", "serve", "-v"]
        );
        let cmd = RunOptions {
            command: vec!["sh".into()],
            ..Default::default()
        };
        assert_eq!(command(Some(&img), &cmd).unwrap(), ["/init", "sh"]);
        let ep = RunOptions {
            entrypoint: Some("/bin/echo".into()),
            ..Default::default()
        };
        assert_eq!(command(Some(&img), &ep).unwrap(), ["/bin/echo"]);
        let cleared = RunOptions {
            entrypoint: Some(String::new()),
            command: vec!["true".into()],
            ..Default::default()
        };
        assert_eq!(command(Some(&img), &cleared).unwrap(), ["true"]);
        assert!(command(None, &none).is_err());
    }

    #[test]
    fn env_merges_in_order() {
        let img = image(r#"{"Env": ["PATH=/opt/bin", "A=1", "B=2"]}"#);
        let env = environment(Some(&img), &["B=3".into(), "C=4".into()], "h", "/root");
        assert_eq!(
            env,
            [
                "PATH=/opt/bin",
                "HOSTNAME=h",
                "A=1",
                "B=3",
                "C=4",
                "HOME=/root"
            ]
        );
        let env = environment(None, &["HOME=/x".into()], "h", "/root");
        assert_eq!(env[0], DEFAULT_PATH);
        assert_eq!(env.last().map(String::as_str), Some("HOME=/x"));
    }

    #[test]
    fn config_has_podman_defaults_and_flags() {
        let img = image(
            r#"{"Cmd": ["sh"], "WorkingDir": "/srv", "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}}}"#,
        );
        let opts = RunOptions {
            memory: Some(64 << 20),
            millicpus: Some(500),
            pids_limit: Some(100),
            ..Default::default()
        };
        let mounts = [
            json!({"destination": "/mnt", "type": "bind", "source": "/data",
                             "options": ["rbind", "rprivate", "ro"]}),
        ];
        let b = gen_with(Some(&img), &opts, &[], &mounts);
        let c = &b.config;
        assert_eq!(b.stop_signal, "SIGQUIT");
        assert_eq!(c["process"]["cwd"], "/srv");
        assert_eq!(
            c["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            11
        );
        assert_eq!(c["process"]["rlimits"][0]["hard"], 20000);
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(c["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(c["linux"]["resources"]["pids"]["limit"], 100);
        assert!(c["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
        let dests: Vec<&str> = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/mnt",
        ] {
            assert!(dests.contains(&d), "{d} missing");
        }
        assert_eq!(
            c["mounts"].as_array().unwrap().last().unwrap()["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert!(ns.contains(&"network"));
        let host = RunOptions {
            network: Network::Host,
            command: vec!["true".into()],
            ..Default::default()
        };
        let b = gen(None, &host, &[]);
        assert!(!b.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        assert_eq!(b.stop_signal, "SIGTERM");
        assert_eq!(b.config["process"]["cwd"], "/");
    }

    #[test]
    fn relative_workdir_refused() {
        let opts = RunOptions {
            workdir: Some("srv".into()),
            command: vec!["true".into()],
            ..Default::default()
        };
        let user = root();
        let r = generate(BundleInput {
            image: None,
            opts: &opts,
            env: &[],
            user: &user,
            hostname: "h",
            rootfs: "merged",
            etc_dir: Path::new("/x"),
            host: HostLimits::current(),
            caps: &caps(),
            devices: &[],
            init: None,
            mounts: &[],
        });
        assert!(r.is_err());
    }
}
