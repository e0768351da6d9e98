//! `create`: everything a container needs before it runs, checked first and written in order:
//! the row (intent, and the name claimed), the hold on its image, then its directory with
//! config.json and the files its network will fill in. No kernel object exists yet; its monitor
//! makes them on `start`.

use std::path::{Path, PathBuf};

use hull_image::StoreError;
use hull_net::ports::PortMapping;
use serde_json::value::RawValue;

use crate::bundle::{self, defaults::HostLimits, seccomp, user, BundleInput};
use crate::monitor::teardown;
use crate::options::{self, Network, RunOptions, Settings};
use crate::seccomp_cache::{self, SectionError};
use crate::store::{self, Record, State};
use crate::{paths, publish, run_flags, volumes, Engine, EngineError};

/// A container just created.
#[derive(Debug)]
pub struct Created {
    pub record: Record,
    /// What the user should know (a default that could not be applied).
    pub warnings: Vec<String>,
}

impl Engine {
    /// Creates a container of `image` with `opts`; nothing runs until [`Engine::start`].
    pub fn create(&mut self, image: &str, opts: &RunOptions) -> Result<Created, EngineError> {
        self.create_owned(image, opts, None)
    }

    /// [`Engine::create`] of a container that `monitor` (forked ahead; `start_early` hands it
    /// the row) owns from its row's first commit: the row says `starting` and names it, so
    /// the monitor starts without a claim of its own (nor hull.db open) on the run's path. A
    /// monitor that dies before it made anything leaves a row the next command finds owned by
    /// a dead monitor, as any.
    pub fn create_for(
        &mut self,
        image: &str,
        opts: &RunOptions,
        monitor: &crate::monitor::Early,
    ) -> Result<Created, EngineError> {
        self.create_owned(image, opts, Some(monitor))
    }

    fn create_owned(
        &mut self,
        image: &str,
        opts: &RunOptions,
        early: Option<&crate::monitor::Early>,
    ) -> Result<Created, EngineError> {
        let monitor = early.map(crate::monitor::Early::identity).transpose()?;
        let mut warnings = Vec::new();
        opts.validate()?;
        if let Some(name) = &opts.name {
            options::check_name(name)?;
        }
        let vm = match opts.isolation {
            crate::vm::Isolation::Container => None,
            crate::vm::Isolation::Vm(vmm) => Some(crate::vm::plan(&self.root, opts, vmm)?),
        };
        self.check_network(opts)?;
        let rootfs = self.images()?.rootfs_for(image).map_err(|e| match e {
            StoreError::NotFound(_) => EngineError::Invalid(format!(
                "image {image:?} not found in the store (hull pull {image}, or hull import)"
            )),
            e => e.into(),
        })?;
        let image_config = rootfs.config().map_err(|e| {
            EngineError::Invalid(format!("image {image}: its config is invalid: {e}"))
        })?;
        let config = image_config.config().as_ref();
        let id = hull_net::network::random_id();
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        let user_spec = opts
            .user
            .clone()
            .or_else(|| config.and_then(|c| c.user().clone()))
            .unwrap_or_default();
        let user = user::resolve(
            &user_spec,
            &read_image_file(&rootfs.lowers, "etc/passwd"),
            &read_image_file(&rootfs.lowers, "etc/group"),
        )?;
        let env = options::collect_env(opts)?;
        let caps = bundle::security::capabilities(opts, &hull_runtime::grantable_capabilities());
        let seccomp = seccomp_section(&self.root, opts, &caps, &mut warnings)?;
        let mut devices = opts.devices.clone();
        if opts.privileged {
            devices.extend(bundle::security::host_devices());
        }
        let init = opts.init.then(run_flags::find_init).transpose()?;
        let (exposed, ports) = exposed_and_published(config, opts)?;
        let mut labels: std::collections::BTreeMap<String, String> = config
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(opts.labels.iter().cloned());
        let volumes = volumes::plan(&self.root, config, &opts.mounts)?;
        let dir = paths::container_dir(&self.root, &id);
        let etc = paths::etc_dir(&self.root, &id);
        let generated = bundle::generate(BundleInput {
            image: config,
            opts,
            env: &env,
            user: &user,
            hostname: &hostname,
            rootfs: "merged",
            etc_dir: &etc,
            host: HostLimits::current(),
            caps: &caps,
            devices: &devices,
            init: init.as_deref(),
            mounts: &volumes.mounts,
        })?;
        volumes.make_bind_sources()?;
        let config_text = bundle::config_text(&generated.config, seccomp.as_deref())
            .map_err(|e| EngineError::Invalid(format!("encoding config.json: {e}")))?;
        if let Some(early) = early {
            early.send_config(config_text.as_bytes());
        }
        let record = Record {
            id: id.clone(),
            name: opts
                .name
                .clone()
                .unwrap_or_else(|| format!("hull_{}", &id[..12])),
            image: image.to_string(),
            image_id: rootfs.id.to_string(),
            command: generated.args.clone(),
            created: hull_runtime::now_rfc3339(),
            state: if monitor.is_some() {
                State::Starting
            } else {
                State::Created
            },
            settings: Settings {
                manifest: rootfs.manifest.to_string(),
                lowers: rootfs.lowers.clone(),
                rm: opts.rm,
                network: opts.network.clone(),
                ports,
                hostname,
                stop_signal: generated.stop_signal.clone(),
                interactive: opts.interactive,
                tty: opts.tty,
                log: opts.log,
                exposed_ports: exposed,
                labels,
                volumes: volumes.named.clone(),
                anonymous_volumes: volumes.anonymous.clone(),
                restart: opts.restart,
                etc: opts.etc.clone(),
                stop_timeout: opts.stop_timeout,
                security: options::SecurityFlags::of(opts),
                vm,
                ..Default::default()
            },
            monitor_pid: monitor.map(|(pid, _)| pid),
            monitor_start: monitor.map(|(_, start)| start),
            pid: None,
            started: None,
            finished: None,
            exit_code: None,
            reason: None,
        };
        if let Some(name) = &opts.name {
            // An exited `--rm` container of that name may still be in its monitor's hands:
            // finding it waits until it is removed, so its name is free again, as docker's.
            let _ = self.find(name);
        }
        // The row and its hold on the image in one transaction (one commit on the start's path).
        store::insert(&mut self.conn, &record, |tx| {
            Ok(hull_image::ImageStore::hold_with(
                tx,
                &rootfs.manifest,
                &id,
            )?)
        })?;
        let written = (|| {
            // After the row that names them: from here no `volume rm` takes them away.
            volumes.make_volumes(&mut self.conn, &self.root, &rootfs.lowers)?;
            write_bundle(&self.root, &dir, &etc, &config_text)
        })();
        if let Err(e) = written {
            let _ = teardown::files(&self.root, &self.conn, &id);
            let _ = store::delete(&self.conn, &id);
            volumes::remove_anonymous(&mut self.conn, &self.root, &volumes.anonymous);
            return Err(e);
        }
        Ok(Created { record, warnings })
    }
}

/// The OCI seccomp section: none when privileged or unconfined (as docker), else the default
/// profile or the user's, each resolved for the container's capabilities.
fn seccomp_section(
    root: &Path,
    opts: &RunOptions,
    caps: &[String],
    warnings: &mut Vec<String>,
) -> Result<Option<Box<RawValue>>, EngineError> {
    let path = match &opts.seccomp {
        _ if opts.privileged => return Ok(None),
        run_flags::Seccomp::Unconfined => return Ok(None),
        run_flags::Seccomp::File(p) => p.clone(),
        run_flags::Seccomp::Default => PathBuf::from(seccomp::DEFAULT_PROFILE),
    };
    match seccomp_cache::section(root, &path, caps) {
        Ok(section) => Ok(Some(section)),
        Err(SectionError::Read(_)) if opts.seccomp == run_flags::Seccomp::Default => {
            warnings.push(format!(
                "no seccomp profile at {} (podman's containers-common): the container runs without seccomp",
                seccomp::DEFAULT_PROFILE
            ));
            Ok(None)
        }
        Err(SectionError::Read(e)) => Err(EngineError::Invalid(format!(
            "--security-opt seccomp={}: {e}",
            path.display()
        ))),
        Err(SectionError::Invalid(e)) => Err(EngineError::Invalid(e)),
    }
}

impl Engine {
    /// What the flags ask of the network, checked before anything is written.
    fn check_network(&self, opts: &RunOptions) -> Result<(), EngineError> {
        match &opts.network {
            Network::Named(name) => {
                hull_net::engine::Net::open(&self.root)?.network(name)?;
            }
            Network::None | Network::Host if !opts.ports.is_empty() => {
                return Err(EngineError::Invalid(format!(
                    "-p needs a bridge network, not --network {}",
                    opts.network.name()
                )))
            }
            _ => {}
        }
        // As docker: the default network gives no names, so no aliases either.
        if !opts.etc.network_aliases.is_empty() && !matches!(opts.network, Network::Named(_)) {
            return Err(EngineError::Invalid(format!(
                "--network-alias needs a user network, not --network {}",
                opts.network.name()
            )));
        }
        let gateway = opts
            .etc
            .hosts
            .iter()
            .any(|(_, ip)| ip == hull_net::etc::HOST_GATEWAY);
        if gateway && opts.network == Network::None {
            return Err(EngineError::Invalid(
                "--add-host HOST:host-gateway: --network none has no way to the host".into(),
            ));
        }
        Ok(())
    }
}

/// The image's ExposedPorts with `--expose`'s, and `-p` with what `-P` publishes of them.
fn exposed_and_published(
    config: Option<&oci_spec::image::Config>,
    opts: &RunOptions,
) -> Result<(Vec<String>, Vec<PortMapping>), EngineError> {
    let mut exposed: Vec<String> = config
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    for e in &opts.expose {
        for port in publish::parse_expose(e)? {
            if !exposed.contains(&port) {
                exposed.push(port);
            }
        }
    }
    let mut ports = opts.ports.clone();
    if opts.publish_all {
        let all = publish::publish_all(&exposed, &ports)?;
        if !all.is_empty() && matches!(opts.network, Network::None | Network::Host) {
            return Err(EngineError::Invalid(format!(
                "-P needs a bridge network, not --network {}",
                opts.network.name()
            )));
        }
        ports.extend(all);
    }
    Ok((exposed, ports))
}

/// The container's directory (a removed container's, emptied, when there is one spare):
/// config.json (`config_text`, which its early monitor may have read already), and the empty
/// /etc files its monitor fills in.
fn write_bundle(root: &Path, dir: &Path, etc: &Path, config_text: &str) -> Result<(), EngineError> {
    if !crate::spare::take(root, dir) {
        // With the root's mount point (a spare has it): the monitor's runtime reads that path
        // while this command mounts the root on it (`monitor::root`).
        let merged = dir.join("merged");
        std::fs::create_dir_all(&merged)
            .map_err(EngineError::io(format!("creating {}", merged.display())))?;
    }
    // There for the process to bind before its monitor writes them (a spare's, emptied,
    // are): made when missing, not truncated, which on ext4 walks the file's extents.
    for name in ["hostname", "hosts", "resolv.conf"] {
        let path = etc.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(EngineError::io(format!("making {}", path.display())))?;
    }
    let path = dir.join("config.json");
    // Not with O_TRUNC: a spare's emptied config.json would be flushed at close (`overwrite`).
    hull_sys::overwrite::overwrite(
        &path,
        config_text.as_bytes(),
        hull_sys::overwrite::Missing::Create,
    )
    .map_err(EngineError::io(format!("writing {}", path.display())))
}

/// A file of the image (its top-most layer that has it), or "" when none has.
pub(crate) fn read_image_file(lowers: &[PathBuf], rel: &str) -> String {
    lowers
        .iter()
        .map(|l| Path::new(l).join(rel))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}
