//! What hull reads about processes from /proc: whether a recorded pid (with its start time) is
//! still the same process, and how many threads the caller has (a fork-like clone is only sound
//! in a single-threaded process); and the one way hull reads a kernel pseudo-file (procfs,
//! sysfs, cgroupfs) whole ([`read_pseudo`]).

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) and state letter of `pid`,
/// or None when there is no such process.
pub fn stat(pid: i32) -> Option<(u64, char)> {
    let (_, fields) = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    // `fields` starts at field 3, so field 22 is at index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// The text of a kernel pseudo-file (procfs, sysfs, cgroupfs). They report a size of 0, so
/// `std::fs::read_to_string` reads them 32 bytes, then 32, 64, 128...: a syscall per doubling
/// (nine for /proc/self/mountinfo). Here the first read has a page, which holds most of them
/// whole; read through `take`, which skips the size query (statx and lseek) a File makes first,
/// for a size these files do not know.
pub fn read_pseudo(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(PSEUDO_FIRST_READ);
    std::fs::File::open(path)?
        .take(u64::MAX)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// The first read of [`read_pseudo`].
const PSEUDO_FIRST_READ: usize = 4096;

/// The command name (field 2) of /proc/PID/stat, and its fields from field 3 (the state) on.
pub fn stat_fields(pid: i32) -> Option<(String, Vec<String>)> {
    let text = read_pseudo(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let fields = text
        .get(close + 2..)?
        .split_whitespace()
        .map(String::from)
        .collect();
    Some((comm, fields))
}

/// The start time of `pid`, for recording.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(start, _)| start)
}

/// True while `pid` is the process that started at `start` and has not exited (a zombie has).
pub fn is_alive(pid: i32, start: u64) -> bool {
    pid > 0 && matches!(stat(pid), Some((s, state)) if s == start && state != 'Z' && state != 'X')
}

/// The number of threads of the calling process (field 20 of /proc/self/stat), or None if /proc
/// cannot tell. On the container start path: one read into a stack buffer, no parsing of the rest.
pub fn thread_count() -> Option<u64> {
    // Fields 1 to 20 are at most a few hundred bytes (the command name is at most 16).
    let mut buf = [0u8; 512];
    let mut file = std::fs::File::open("/proc/self/stat").ok()?;
    let len = std::io::Read::read(&mut file, &mut buf).ok()?;
    let text = buf.get(..len)?;
    let rest = text.get(text.iter().rposition(|&b| b == b')')? + 2..)?;
    // `rest` starts at field 3, so field 20 is the 18th from here.
    let field = rest.split(|&b| b == b' ').nth(17)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_pseudo_reads_a_file_whole() {
        // Beyond the first 4 KiB too (a file: a /proc one this long could change between reads).
        let path = std::env::temp_dir().join(format!("hull-sys-read-{}", std::process::id()));
        let long: String = (0..2000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &long).unwrap();
        let read = super::read_pseudo(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read.unwrap(), long);
        let stat = super::read_pseudo("/proc/self/stat").unwrap();
        assert!(
            stat.starts_with(&format!("{} (", std::process::id())),
            "{stat}"
        );
        assert!(stat.ends_with('\n'), "{stat}");
    }

    #[test]
    fn thread_count_counts_this_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv());
        let count = super::thread_count().expect("/proc/self/stat");
        let tasks = std::fs::read_dir("/proc/self/task")
            .expect("task dir")
            .count();
        drop(tx);
        let _ = parked.join();
        assert!(count >= 2, "{count} threads with one parked");
        // Other tests' threads may come and go between the two reads.
        assert!(
            count.abs_diff(tasks as u64) <= 8,
            "{count} vs {tasks} tasks"
        );
    }
}
