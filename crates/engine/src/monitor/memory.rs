//! What an idle monitor gives back to the kernel once its container runs: it lives as long as
//! its container, one per container, so what stays resident in it is the engine's cost per
//! container (podman's conmon is the peer).

use rusqlite::Connection;

const PAGE: usize = 4096;

/// Releases the database's page cache, the heap its start-up parsed and freed, the stack below
/// the idle frame, and its mappings of this executable's code and read-only data.
pub(super) fn release(conn: &Connection) {
    let _ = conn.execute_batch("PRAGMA shrink_memory");
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        release_stack(&smaps);
        release_code(&smaps);
    }
    // Last: the text just read is freed too.
    // SAFETY: malloc_trim only gives free pages of this process's allocator back to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// The stack below this frame, where the starter's deep work (argument parsing, JSON, SQL)
/// left pages the fork copied, goes back to the kernel: what the monitor needs from here on
/// (its relay loop) is shallow, and a page it touches again comes back zeroed.
fn release_stack(maps: &str) {
    /// Kept below this frame for the calls it makes until madvise returns (a few hundred
    /// bytes; a signal's frame is written afresh). 24 KB more were kept resident per monitor
    /// with a 32 KB margin.
    const MARGIN: usize = 8 * 1024;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some(low) = maps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split('-').next())
        .and_then(|a| usize::from_str_radix(a, 16).ok())
    else {
        return;
    };
    let high = sp.saturating_sub(MARGIN) & !(PAGE - 1);
    if high > low {
        // SAFETY: [low, high) is this thread's stack below its current frame (and margin):
        // nothing lives there, so dropping its pages loses nothing.
        unsafe { libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED) };
    }
}

/// Unmaps (from this process's page tables, not from the page cache) the pages of this
/// executable's code and read-only data that the create and the starter's work touched: the
/// relay loop uses a small part of a binary of several MB, and each mapped page counts in every
/// monitor's RSS and PSS. A page used again faults back in from the page cache, unchanged
/// (with its neighbours of the same page-cache folio: an idle monitor keeps ~1.4 MB of the
/// static binary's 8 MB of code mapped, where it had 6.3 MB).
fn release_code(smaps: &str) {
    for (start, end) in unmodified_file_ranges(smaps) {
        // SAFETY: a private file mapping that is not writable and holds no anonymous page
        // (none was written, not even by the startup's relocations before a RELRO mprotect)
        // is the file's pages only: MADV_DONTNEED drops page-table entries, and the next
        // access maps the same file page again, also for the code running this.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The address ranges, from /proc/self/smaps, of file mappings that are private, not
/// writable, and have no anonymous (written, copied-on-write) page: code and read-only data.
fn unmodified_file_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Anonymous:") {
            if let Some(range) = current.take() {
                if kib.trim() == "0 kB" {
                    found.push(range);
                }
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        let private_read_only = perms.len() == 4
            && perms.starts_with('r')
            && perms.as_bytes()[1] == b'-'
            && perms.ends_with('p');
        current = (private_read_only && path.starts_with('/')).then_some((start, end));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_private_read_only_file_mappings_are_released() {
        let smaps = "\
00400000-00401000 r--p 00000000 fe:01 123 /usr/bin/hull
Rss:                   4 kB
Anonymous:             0 kB
00401000-00abc000 r-xp 00001000 fe:01 123 /usr/bin/hull
Anonymous:             0 kB
00c9f000-00ca4000 r--p 0089e000 fe:01 123 /usr/bin/hull
Anonymous:            20 kB
00ca4000-00cad000 rw-p 008a3000 fe:01 123 /usr/bin/hull
Anonymous:            12 kB
051ea000-0520c000 rw-p 00000000 00:00 0 [heap]
Anonymous:           128 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 9 /dev/shm/x
Anonymous:             0 kB
7ffd5547f000-7ffd554a0000 rw-p 00000000 00:00 0 [stack]
Anonymous:           100 kB
7ffd555fc000-7ffd555fe000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            unmodified_file_ranges(smaps),
            [(0x40_0000, 0x40_1000), (0x40_1000, 0xab_c000)]
        );
    }

    /// On this very process: what is released faults back in from the page cache as it runs
    /// on (a written page, as the startup's relocations leave in RELRO, would have come back
    /// zeroed and crashed it), and fewer of its code pages are mapped after.
    #[test]
    fn released_code_is_mapped_again_as_it_runs() {
        let resident = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let mut total = 0u64;
            let mut counting = false;
            for line in smaps.lines() {
                if let Some(kib) = line.strip_prefix("Rss:") {
                    if counting {
                        total += kib.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
                    }
                } else if line.contains('-') && line.split_whitespace().count() >= 5 {
                    let perms = line.split_whitespace().nth(1).unwrap_or("");
                    counting = perms == "r-xp";
                }
            }
            total
        };
        let before = resident();
        release_code(&std::fs::read_to_string("/proc/self/smaps").unwrap());
        let after = resident();
        assert!(
            after < before,
            "code mapped: {before} kB before, {after} kB after"
        );
        assert_eq!(format!("{:?}", vec![1, 2]), "[1, 2]");
    }
}
