//! What `hull` does to containers that exist: start one (fork its monitor), stop, kill, wait,
//! remove, read logs, inspect; and settle those whose monitor died. (Staying attached to one is
//! [`crate::attach`]'s.)

use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::attach::Attach;
use crate::log_read::LogQuery;
use crate::monitor::{self, teardown, Monitor};
use crate::options::UserStop;
use crate::store::{self, Record, State};
use crate::{paths, procfs, Engine, EngineError};

/// How often a waiting command looks at a monitor.
const POLL: Duration = Duration::from_millis(10);

impl Engine {
    /// Starts a created (or exited) container: forks its monitor, which reports back.
    pub fn start(
        &mut self,
        reference: &str,
        attach: Option<Attach>,
    ) -> Result<Monitor, EngineError> {
        let spawned = self.start_and_close(reference, attach);
        self.reopen()?;
        spawned
    }

    /// [`Engine::start`] that leaves this engine without its database (the connection is
    /// closed for the fork) until [`Engine::reopen`]: a `run` that then only waits for its
    /// container does not open it again (each open parses the whole schema). Any query
    /// before `reopen` fails (an empty database), none goes astray.
    pub fn start_and_close(
        &mut self,
        reference: &str,
        attach: Option<Attach>,
    ) -> Result<Monitor, EngineError> {
        let record = self.startable(reference)?;
        // SQLite keeps per-process state about the files it has open (locks, descriptors to
        // reuse); a forked child that opens hull.db again would trust the parent's copy. So no
        // connection is open across the fork; the parent reopens after it.
        self.kept = None;
        drop(std::mem::replace(
            &mut self.conn,
            rusqlite::Connection::open_in_memory()?,
        ));
        monitor::spawn(&self.root, &record.id, attach)
    }

    /// [`Engine::start_and_close`] through a monitor forked before the container was created
    /// (so before this engine opened hull.db). The database is left as there, after the
    /// monitor has its container: what a foreground `run` does next must not find the
    /// container in it (it would wait for a short container's teardown); its connection is
    /// kept open, unused, until [`Engine::reopen`] or the end of this engine. For the container
    /// this command has just created for it ([`Engine::create_for`]): the monitor is handed
    /// its row, which names it already.
    pub fn start_early(
        &mut self,
        record: &Record,
        early: monitor::Early,
    ) -> Result<Monitor, EngineError> {
        let started = early.start(&self.root, record);
        self.kept = Some(std::mem::replace(
            &mut self.conn,
            rusqlite::Connection::open_in_memory()?,
        ));
        started
    }

    /// A container that may be started: not running, nor on its way.
    fn startable(&self, reference: &str) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        if record.state.is_live() {
            return Err(EngineError::BadState {
                id: record.id,
                state: record.state.as_str().to_string(),
                op: "start",
            });
        }
        Ok(record)
    }

    /// Opens the database again after [`Engine::start_and_close`].
    pub fn reopen(&mut self) -> Result<(), EngineError> {
        self.conn = match self.kept.take() {
            Some(conn) => conn,
            None => hull_db::open(&self.root)?,
        };
        Ok(())
    }

    /// Sends `signal` to a running container's process. As docker's: it ends the container's
    /// restart policy when it is SIGKILL or the container's stop signal, and any signal keeps
    /// an `unless-stopped` container from restarting.
    pub fn kill(&mut self, reference: &str, signal: Signal) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        if record.state == State::Restarting {
            return Err(EngineError::Invalid(format!(
                "container {} is restarting, wait until the container is running",
                record.id
            )));
        }
        if record.state != State::Running {
            return Err(EngineError::NotRunning(record.id));
        }
        let stop_signal =
            hull_runtime::parse_signal(&record.settings.stop_signal).unwrap_or(Signal::SIGTERM);
        store::note_user_stop(
            &mut self.conn,
            &record.id,
            UserStop {
                cancelled: signal == Signal::SIGKILL || signal == stop_signal,
                signalled: true,
            },
        )?;
        let vm = record.settings.vm.is_some();
        crate::vm::control::signal_any(&self.root, &record.id, vm, signal, false)?;
        if signal == stop_signal {
            self.thaw_after_signal(&record);
        }
        Ok(record)
    }

    /// Removes a container that is not running (with `force`, kills it first).
    pub fn remove(&mut self, reference: &str, force: bool) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        if record.state.is_live() {
            if !force {
                return Err(EngineError::Running(record.id));
            }
            store::note_user_stop(&mut self.conn, &record.id, UserStop::STOPPED)?;
            let vm = record.settings.vm.is_some();
            let _ =
                crate::vm::control::signal_any(&self.root, &record.id, vm, Signal::SIGKILL, true);
            wait_monitor(&record, Duration::from_secs(30));
            self.reconcile()?;
        }
        let leftovers = teardown::kernel_objects(&self.root, &mut self.conn, &record.id);
        if !leftovers.is_empty() {
            return Err(EngineError::Monitor {
                id: record.id,
                message: format!("cannot remove: {}", leftovers.join("; ")),
            });
        }
        teardown::files(&self.root, &self.conn, &record.id)?;
        store::delete(&self.conn, &record.id)?;
        Ok(record)
    }

    /// Waits until the container is no longer running; its exit code.
    pub fn wait(&mut self, reference: &str) -> Result<i32, EngineError> {
        let record = self.find(reference)?;
        if record.state.is_live() {
            wait_monitor(&record, Duration::MAX);
            self.reconcile()?;
        }
        let now =
            store::get(&self.conn, &record.id)?.ok_or(EngineError::NoSuchContainer(record.id))?;
        Ok(now.exit_code.unwrap_or(0))
    }

    /// Stops the container (as [`Engine::stop`]) and starts it again in the background.
    pub fn restart(
        &mut self,
        reference: &str,
        timeout: Option<Duration>,
    ) -> Result<Monitor, EngineError> {
        let record = self.stop(reference, timeout)?;
        self.start(&record.id, None)
    }

    /// Copies the container's log to `out` and `err` as `query` says; with `follow`, until it
    /// stops.
    pub fn logs(
        &self,
        reference: &str,
        query: &LogQuery,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), EngineError> {
        let record = self.find(reference)?;
        let path = paths::log_file(&self.root, &record.id);
        let mut running = || {
            record
                .monitor_pid
                .zip(record.monitor_start)
                .is_some_and(|(p, s)| procfs::is_alive(p, s))
        };
        crate::log_read::copy(&path, query, out, err, &mut running)
    }

    /// docker-style details of a container, with its config.json and network attachments.
    pub fn inspect(&self, reference: &str) -> Result<Value, EngineError> {
        let r = self.find(reference)?;
        let dir = paths::container_dir(&self.root, &r.id);
        let config: Value = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let links = hull_net::engine::Net::open(&self.root)?.attachments(Some(&r.id))?;
        let running = r.state == State::Running;
        let paused = self.is_paused(&r);
        Ok(json!({
            "Id": r.id,
            "Name": r.name,
            "Created": r.created,
            "Image": r.image_id,
            "ImageName": r.image,
            "Path": r.command.first(),
            "Args": r.command.get(1..).unwrap_or_default(),
            "RestartCount": r.settings.restart_count,
            "State": {
                "Status": if paused { "paused" } else { r.state.as_str() },
                "Running": running,
                "Paused": paused,
                "Restarting": r.state == State::Restarting,
                "Pid": if running { r.pid.unwrap_or(0) } else { 0 },
                "ExitCode": r.exit_code.unwrap_or(0),
                "Error": r.reason.clone().unwrap_or_default(),
                "StartedAt": r.started,
                "FinishedAt": r.finished,
                "MonitorPid": r.monitor_pid,
            },
            "HostConfig": {
                "AutoRemove": r.settings.rm,
                "RestartPolicy": {
                    "Name": r.settings.restart.name(),
                    "MaximumRetryCount": r.settings.restart.max_retries(),
                },
                "NetworkMode": r.settings.network.name(),
                "PortBindings": r.settings.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "LogConfig": log_config(&r.settings.log),
                "ExtraHosts": r.settings.etc.hosts.iter().map(|(h, ip)| format!("{h}:{ip}")).collect::<Vec<_>>(),
                "Dns": r.settings.etc.dns,
                "DnsSearch": r.settings.etc.dns_search,
                "DnsOptions": r.settings.etc.dns_options,
                "Privileged": r.settings.security.privileged,
                "ReadonlyRootfs": r.settings.security.read_only,
                "CapAdd": r.settings.security.cap_add,
                "CapDrop": r.settings.security.cap_drop,
                "SecurityOpt": r.settings.security.security_opt,
                "Init": r.settings.security.init,
                // docker's field (hyperv on Windows); the VM's make beside it.
                "Isolation": if r.settings.vm.is_some() { "vm" } else { "default" },
                "Vm": r.settings.vm,
            },
            "Config": {
                "Hostname": r.settings.hostname,
                "StopSignal": r.settings.stop_signal,
                "StopTimeout": r.settings.stop_timeout,
                "Tty": r.settings.tty,
                "OpenStdin": r.settings.interactive,
                "ExposedPorts": r.settings.exposed_ports,
                "Labels": r.settings.labels,
                "Env": config["process"]["env"],
                "WorkingDir": config["process"]["cwd"],
                "User": config["process"]["user"],
            },
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "MergedDir": dir.join("merged"),
                    "UpperDir": dir.join("upper"),
                    "WorkDir": dir.join("work"),
                },
            },
            "Mounts": crate::volumes::inspect_mounts(&self.root, &config),
            "LogPath": paths::log_file(&self.root, &r.id),
            "NetworkSettings": links,
            "Kernel": self.kernel_view(&r.id)?,
            "Spec": config,
        }))
    }

    /// Containers whose monitor is gone while hull.db says one owns them: their kernel objects
    /// are removed and they are recorded as exited, with the reason.
    pub(crate) fn reconcile(&mut self) -> Result<(), EngineError> {
        for r in store::watched(&self.conn)? {
            // Exited with a monitor named: its monitor was taking it down.
            let tearing_down = r.state == State::Exited && r.monitor_pid.is_some();
            if !r.state.is_live() && !tearing_down {
                continue;
            }
            let alive = r
                .monitor_pid
                .zip(r.monitor_start)
                .is_some_and(|(p, s)| procfs::is_alive(p, s));
            if alive {
                continue;
            }
            // The row may have moved on meanwhile (its monitor finished as we looked).
            let now = match store::get(&self.conn, &r.id)? {
                Some(now) if now.state == r.state && now.monitor_pid == r.monitor_pid => now,
                _ => continue,
            };
            let leftovers = teardown::kernel_objects(&self.root, &mut self.conn, &r.id);
            if tearing_down {
                let reason = (!leftovers.is_empty())
                    .then(|| format!("teardown: {}", leftovers.join("; ")))
                    .or(now.reason);
                store::torn_down(&self.conn, &r.id, reason.as_deref())?;
                continue;
            }
            let mut reason = "its monitor died; the container was killed".to_string();
            if !leftovers.is_empty() {
                reason.push_str(&format!("; teardown: {}", leftovers.join("; ")));
            }
            store::set_exited(
                &self.conn,
                &r.id,
                137,
                &hull_runtime::now_rfc3339(),
                Some(&reason),
            )?;
        }
        Ok(())
    }
}

/// docker's `HostConfig.LogConfig` of a json-file log.
fn log_config(log: &crate::log_opts::LogOptions) -> Value {
    let mut config = serde_json::Map::new();
    if let Some(size) = log.max_size {
        config.insert("max-size".into(), json!(size.to_string()));
        config.insert("max-file".into(), json!(log.max_file.to_string()));
    }
    json!({"Type": "json-file", "Config": config})
}

/// Waits up to `timeout` for the container's monitor to exit; whether it did.
pub(crate) fn wait_monitor(record: &Record, timeout: Duration) -> bool {
    let Some((pid, start)) = record.monitor_pid.zip(record.monitor_start) else {
        return true;
    };
    let deadline = Instant::now().checked_add(timeout);
    while procfs::is_alive(pid, start) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}
