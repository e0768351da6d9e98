//! Starting a forked child on another CPU than its parent.
//!
//! The kernel queues a new child on its parent's CPU, and when its fork balancing keeps it there
//! (seen here on nearly every run, the other CPU idle), the child's work runs after the
//! parent's instead of beside it, until the parent blocks. Two places fork a child whose work
//! is meant to overlap its parent's: the early monitor (hull.db, the network namespace, while
//! `hull` writes the container) and the container's first process (its first mounts, while the
//! runtime makes its cgroups). The parent moves the child off its own CPU right after the fork,
//! and the child takes back every CPU it may use before it first waits for its parent, when it
//! sees it was moved ([`Apart::restore_if_moved`]), else at a point the parent tells it of
//! (after the move); always before anything that inherits or reads its affinity. With a
//! single allowed CPU nothing is moved.
//!
//! Not later than its first wait: the parent, woken by the child's message, often runs on
//! the child's CPU from then on (the waker's), and a child still kept off the other CPU then
//! waits for the parent to block again while that CPU idles.

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPUs the forking process may use, read before the fork (the child's copy is what it
/// restores).
#[derive(Debug, Clone, Copy)]
pub struct Apart {
    allowed: CpuSet,
}

impl Apart {
    /// This process's CPUs, or None when there is no other CPU to move a child to.
    pub fn before_fork() -> Option<Apart> {
        let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let count = (0..CpuSet::count())
            .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
            .count();
        (count > 1).then_some(Apart { allowed })
    }

    /// In the parent: lets `child` run on every allowed CPU but the one this process is on.
    /// Best effort: a failure leaves the child where the kernel put it.
    pub fn move_child(&self, child: Pid) {
        let Ok(here) = sched_getcpu() else { return };
        let mut others = self.allowed;
        if others.unset(here).is_err() {
            return;
        }
        let _ = sched_setaffinity(child, &others);
    }

    /// In the child, after the parent's move: every allowed CPU again.
    pub fn restore(&self) {
        let _ = sched_setaffinity(Pid::from_raw(0), &self.allowed);
    }

    /// In the child, before it first waits for its parent: [`restore`](Self::restore) if the
    /// parent's move has happened (the parent moves it once, so a restore after it is final).
    /// False when the move is not seen yet, or failed: the child restores at the parent's word.
    pub fn restore_if_moved(&self) -> bool {
        let moved = sched_getaffinity(Pid::from_raw(0)).is_ok_and(|now| now != self.allowed);
        if moved {
            self.restore();
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_child_gets_its_cpus_back() {
        let Some(apart) = Apart::before_fork() else {
            println!("SKIP: a single CPU is allowed; nothing is moved");
            return;
        };
        let (read, write) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes raw system calls and leaves with _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut byte = [0u8; 1];
                let _ = nix::unistd::read(&read, &mut byte);
                // The parent's word comes after its move: the move is seen and undone.
                let restored = apart.restore_if_moved();
                let same = sched_getaffinity(Pid::from_raw(0)).is_ok_and(|s| s == apart.allowed);
                // SAFETY: leaving the forked test process without unwinding.
                unsafe { libc::_exit(i32::from(!(same && restored))) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let here = sched_getcpu().unwrap();
                apart.move_child(child);
                let moved = sched_getaffinity(child).unwrap();
                assert!(!moved.is_set(here).unwrap(), "still allowed on CPU {here}");
                assert_ne!(moved, apart.allowed);
                nix::unistd::write(&write, b"g").unwrap();
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
