//! What the runtime reads about processes from /proc: whether a recorded pid is still the same
//! process, and its namespaces.

use std::path::PathBuf;

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) and state letter of `pid`,
/// or None when there is no such process.
pub fn stat(pid: i32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after its last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3, so field 22 is the 20th from here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// The start time of `pid`, for recording.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(start, _)| start)
}

/// True while `pid` is the process that started at `start` and has not exited (a zombie has).
pub fn is_alive(pid: i32, start: u64) -> bool {
    pid > 0 && matches!(stat(pid), Some((s, state)) if s == start && state != 'Z' && state != 'X')
}

pub fn ns_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{name}"))
}
