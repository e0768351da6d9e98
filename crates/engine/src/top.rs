//! `top`: the processes of a container (the pids in its cgroup), described from /proc in the
//! columns of `ps -ef` (docker's default), or by the host's `ps` with the user's options and
//! filtered to those pids by its PID column, as docker does.

use std::collections::HashSet;
use std::process::Command;

use hull_runtime::Runtime;
use serde::Serialize;

use crate::store::State;
use crate::times::{self, Nanos};
use crate::{paths, procfs, Engine, EngineError};

/// docker's `ContainerTopOKBody`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `ps -ef`'s columns.
const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

impl Engine {
    /// The container's processes; `ps_args` empty for docker's default columns.
    pub fn top(&self, reference: &str, ps_args: &[String]) -> Result<Top, EngineError> {
        let record = self.find(reference)?;
        crate::vm::control::refuse_vm(&record, "top")?;
        if record.state != State::Running {
            return Err(EngineError::NotRunning(record.id));
        }
        let mut pids = Runtime::new(paths::runtime_root(&self.root))
            .open(&record.id)
            .map_err(|_| EngineError::NotRunning(record.id.clone()))?
            .pids()?;
        pids.sort_unstable();
        if ps_args.is_empty() {
            let host = HostClock::read()?;
            let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            return Ok(Top {
                titles: TITLES.iter().map(|t| t.to_string()).collect(),
                processes: pids
                    .iter()
                    .filter_map(|&pid| ps_ef_row(pid, &host, &users))
                    .collect(),
            });
        }
        host_ps(ps_args, &pids)
    }
}

/// What turning clock ticks into times needs.
struct HostClock {
    ticks: u64,
    boot: Nanos,
    now: Nanos,
}

impl HostClock {
    fn read() -> Result<HostClock, EngineError> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(100);
        let stat = std::fs::read_to_string("/proc/stat").map_err(EngineError::io("/proc/stat"))?;
        let boot: i128 = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| EngineError::Invalid("/proc/stat has no btime".into()))?;
        Ok(HostClock {
            ticks,
            boot: boot * 1_000_000_000,
            now: times::now(),
        })
    }
}

/// One `ps -ef` row of `pid`; None when it is gone.
fn ps_ef_row(pid: i32, clock: &HostClock, users: &str) -> Option<Vec<String>> {
    let (comm, f) = procfs::stat_fields(pid)?;
    let field = |n: usize| -> u64 { f.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let cpu_secs = (field(14) + field(15)) / clock.ticks;
    let started = clock.boot + i128::from(field(22)) * 1_000_000_000 / i128::from(clock.ticks);
    let elapsed = u64::try_from((clock.now - started) / 1_000_000_000).unwrap_or(0);
    let c = (cpu_secs * 100).checked_div(elapsed).unwrap_or(0).min(99);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(cmdline.strip_suffix(b"\0").unwrap_or(&cmdline)).replace('\0', " ")
    };
    Some(vec![
        user_name(&uid, users),
        pid.to_string(),
        f.get(1).cloned().unwrap_or_default(),
        c.to_string(),
        stime(started, clock.now),
        tty(field(7)),
        cpu_time(cpu_secs),
        cmd,
    ])
}

/// The host's name for `uid` (ps shows the host's, as for any host process), else the number.
fn user_name(uid: &str, passwd: &str) -> String {
    passwd
        .lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?;
            (parts.nth(1)? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// ps's STIME: `HH:MM` today, `MonDD` this year, else the year (UTC).
fn stime(started: Nanos, now: Nanos) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = |t: Nanos| hull_image::time::rfc3339(u64::try_from(t / 1_000_000_000).unwrap_or(0));
    let (at, today) = (text(started), text(now));
    if at[..10] == today[..10] {
        return at[11..16].to_string();
    }
    if at[..4] == today[..4] {
        let month = at[5..7]
            .parse::<usize>()
            .ok()
            .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
        return format!("{}{}", month.unwrap_or(&"???"), &at[8..10]);
    }
    at[..4].to_string()
}

/// ps's TTY from the stat's tty_nr: `pts/N`, `ttyN`, `ttySN`, or `?`.
fn tty(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

/// ps's TIME: `[DD-]HH:MM:SS`.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The host's `ps ARGS`, keeping the rows whose PID column is one of `pids`.
fn host_ps(args: &[String], pids: &[i32]) -> Result<Top, EngineError> {
    let out = Command::new("ps")
        .args(args)
        .output()
        .map_err(EngineError::io("running ps"))?;
    if !out.status.success() {
        return Err(EngineError::Invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&out.stdout), pids)
}

/// docker's parsing of ps output: the header's PID column selects rows; the last column takes
/// the rest of the line (a command with spaces).
fn parse_ps(text: &str, pids: &[i32]) -> Result<Top, EngineError> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::Invalid("couldn't find PID field in ps output".into()))?;
    let wanted: HashSet<i32> = pids.iter().copied().collect();
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Some(pid) = fields.get(col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !wanted.contains(&pid) {
            continue;
        }
        let last = titles.len() - 1;
        let mut row: Vec<String> = fields[..last].iter().map(|f| f.to_string()).collect();
        row.push(fields[last..].join(" "));
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_columns() {
        assert_eq!(cpu_time(59), "00:00:59");
        assert_eq!(cpu_time(90_061), "1-01:01:01");
        assert_eq!(tty(0), "?");
        assert_eq!(tty((136 << 8) | 3), "pts/3");
        assert_eq!(tty((4 << 8) | 65), "ttyS1");
        let day = 86_400 * 1_000_000_000i128;
        let t = 19_723 * day + 3_723 * 1_000_000_000;
        assert_eq!(stime(t, t + 1000), "01:02");
        assert_eq!(stime(t, t + 40 * day), "Jan01");
        assert_eq!(stime(t, t + 400 * day), "2024");
        assert_eq!(user_name("0", "root:x:0:0::/root:/bin/sh\n"), "root");
        assert_eq!(user_name("7", "root:x:0:0::/root:/bin/sh\n"), "7");
    }

    #[test]
    fn ps_output_filtered_by_pid() {
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep 100\n";
        let top = parse_ps(text, &[42]).unwrap();
        assert_eq!(top.titles, ["UID", "PID", "PPID", "CMD"]);
        assert_eq!(top.processes, [["root", "42", "1", "sleep 100"]]);
        assert!(parse_ps("USER CMD\n", &[1]).is_err());
    }
}
