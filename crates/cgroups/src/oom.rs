//! OOM kill notifications: an fd that becomes readable when the kernel OOM-kills in the cgroup.
//! v1: eventfd registered through cgroup.event_control on memory.oom_control; v2: inotify on
//! memory.events. Both count kills from the kernel's oom_kill counter, so none is missed or doubled.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::cgroup::Cgroup;
use crate::error::CgroupError;
use crate::fs;
use crate::sys;

#[derive(Debug)]
enum Source {
    V1(EventFd),
    V2(OwnedFd),
}

/// Pollable OOM notifications for one cgroup; see `read`.
#[derive(Debug)]
pub struct OomEvents {
    source: Source,
    /// memory.oom_control (v1) or memory.events (v2): holds the "oom_kill N" counter.
    counter: PathBuf,
    seen: u64,
}

impl AsFd for OomEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1(e) => e.as_fd(),
            Source::V2(fd) => fd.as_fd(),
        }
    }
}

impl OomEvents {
    /// Number of OOM kills in the cgroup since the previous call (or since creation of this
    /// object). Clears the fd's readiness. Errors once the cgroup is gone.
    pub fn read(&mut self) -> Result<u64, CgroupError> {
        match &self.source {
            Source::V1(e) => {
                // Non-blocking: EAGAIN just means nothing was signalled since last time.
                let _ = e.read();
            }
            Source::V2(fd) => sys::drain(fd.as_fd()),
        }
        let now = oom_kills(&self.counter)?;
        let new = now.saturating_sub(self.seen);
        self.seen = now;
        Ok(new)
    }
}

fn oom_kills(path: &std::path::Path) -> Result<u64, CgroupError> {
    Ok(fs::keyed(&fs::read_flat_keyed(path)?, "oom_kill"))
}

impl Cgroup {
    /// Starts watching for OOM kills in this container's memory cgroup.
    pub fn oom_events(&self) -> Result<OomEvents, CgroupError> {
        let Some(i) = self.host_of("memory") else {
            return Err(CgroupError::invalid(
                "oom events",
                "the memory cgroup controller is not mounted on this host",
            ));
        };
        let d = self.dir(i);
        if d.version == 2 {
            let counter = d.path.join("memory.events");
            let fd = sys::inotify_modify(&counter)
                .map_err(|e| CgroupError::sys(format!("inotify on {}", counter.display()), e))?;
            let seen = oom_kills(&counter)?;
            return Ok(OomEvents {
                source: Source::V2(fd),
                counter,
                seen,
            });
        }
        let counter = d.path.join("memory.oom_control");
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| CgroupError::sys("eventfd", e))?;
        let ctl = std::fs::File::open(&counter).map_err(|source| CgroupError::Read {
            path: counter.clone(),
            source,
        })?;
        use std::os::fd::AsRawFd;
        let reg = format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd());
        fs::write_file(&d.path.join("cgroup.event_control"), &reg)?;
        // The kernel holds its own reference to memory.oom_control from here on.
        drop(ctl);
        let seen = oom_kills(&counter)?;
        Ok(OomEvents {
            source: Source::V1(efd),
            counter,
            seen,
        })
    }
}
