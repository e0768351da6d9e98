//! Freezing and thawing: v1 freezer.state, or cgroup.freeze on cgroup2; returns once the kernel
//! reports the cgroup frozen.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::error::CgroupError;
use crate::fs;

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a v1 cgroup may stay FREEZING before it is thawed for a moment and frozen again.
const V1_TOGGLE_AFTER: Duration = Duration::from_millis(500);

enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

impl Cgroup {
    fn freezer(&self) -> Result<Freezer, CgroupError> {
        if let Some(i) = self.v1("freezer") {
            return Ok(Freezer::V1(self.dir(i).path.clone()));
        }
        if let Some(i) = self.v2() {
            return Ok(Freezer::V2(self.dir(i).path.clone()));
        }
        Err(CgroupError::invalid(
            "freezer",
            "neither a v1 freezer hierarchy nor cgroup2 is mounted on this host",
        ))
    }

    /// Freezes every process of the container; returns once the kernel says FROZEN. If that does
    /// not happen within 5 s the cgroup is thawed again and an error returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut delay = Duration::from_micros(200);
        match self.freezer()? {
            Freezer::V1(dir) => {
                let state = dir.join("freezer.state");
                let mut toggle_at = Instant::now() + V1_TOGGLE_AFTER;
                loop {
                    // Re-writing FROZEN retries tasks that were busy (e.g. in vfork) last time.
                    fs::write_file(&state, "FROZEN")?;
                    if fs::read(&state)?.trim() == "FROZEN" {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        let _ = fs::write_file(&state, "THAWED");
                        return Err(timeout(dir, "FROZEN"));
                    }
                    if Instant::now() > toggle_at {
                        // A cgroup can stay FREEZING for good (a task caught between a fork
                        // and the freezer's walk, seen in a shell forking in a loop): thawing
                        // it for a moment lets it settle, and the next FROZEN catches all, as
                        // runc's v1 freeze does every 50 tries.
                        fs::write_file(&state, "THAWED")?;
                        std::thread::sleep(Duration::from_millis(10));
                        toggle_at = Instant::now() + V1_TOGGLE_AFTER;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(20));
                }
            }
            Freezer::V2(dir) => {
                fs::write_file(&dir.join("cgroup.freeze"), "1")?;
                loop {
                    if frozen_v2(&dir)? {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        let _ = fs::write_file(&dir.join("cgroup.freeze"), "0");
                        return Err(timeout(dir, "frozen"));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            Freezer::V1(dir) => fs::write_file(&dir.join("freezer.state"), "THAWED"),
            Freezer::V2(dir) => fs::write_file(&dir.join("cgroup.freeze"), "0"),
        }
    }

    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            Freezer::V1(dir) => Ok(fs::read(&dir.join("freezer.state"))?.trim() == "FROZEN"),
            Freezer::V2(dir) => frozen_v2(&dir),
        }
    }
}

fn frozen_v2(dir: &std::path::Path) -> Result<bool, CgroupError> {
    let p = dir.join("cgroup.events");
    Ok(fs::read_flat_keyed(&p)?
        .iter()
        .any(|(k, v)| k == "frozen" && *v == 1))
}

fn timeout(path: PathBuf, state: &'static str) -> CgroupError {
    CgroupError::Timeout {
        path,
        state,
        secs: FREEZE_TIMEOUT.as_secs(),
    }
}
