//! Reading and writing cgroup files: one open + one write per value, errors carry the path.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::CgroupError;

/// Writes `value` in a single write(2): cgroup files parse each write as one command.
pub(crate) fn write(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    hull_sys::procfs::read_pseudo(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file, `None` if it does not exist (an optional controller file).
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match hull_sys::procfs::read_pseudo(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("{s:?} is not a number"),
    })
}

pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// Reads an optional single-number file; missing => None.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    read_opt(path)?.map(|s| parse_u64(path, &s)).transpose()
}

/// Parses a flat keyed file ("key value" per line), e.g. memory.stat, cpu.stat, memory.events.
pub(crate) fn parse_flat_keyed(path: &Path, s: &str) -> Result<Vec<(String, u64)>, CgroupError> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("line {l:?} is not \"key value\""),
                });
            };
            Ok((k.to_string(), parse_u64(path, v)?))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<Vec<(String, u64)>, CgroupError> {
    parse_flat_keyed(path, &read(path)?)
}

pub(crate) fn keyed(kv: &[(String, u64)], key: &str) -> u64 {
    kv.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}
