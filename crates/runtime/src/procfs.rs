//! What the runtime reads about processes from /proc: hull-sys's pid checks, and the paths of a
//! process's namespaces.

use std::path::PathBuf;

pub use hull_sys::procfs::{is_alive, start_time, thread_count};

pub fn ns_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{name}"))
}
