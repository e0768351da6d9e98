//! Random access to the files of a tar archive (OCI layout tars, docker-archive tars):
//! one pass records where each member's data is, later reads seek straight to it.
//! Compressed archives are first decompressed into a temp file in the store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::SourceError;
use crate::unpack::{decompress, Compression};

#[derive(Debug)]
pub struct TarIndex {
    file: File,
    members: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
    name: String,
    _temp: Option<TempFile>,
}

#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn clean(p: &str) -> String {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl TarIndex {
    /// Indexes `path`; a compressed archive is decompressed into `tmp_dir` first.
    pub fn open(path: &Path, tmp_dir: &Path) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let io_err = |e| SourceError::Io {
            what: name.clone(),
            err: e,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let mut head = [0u8; 4];
        let n = file.read(&mut head).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        let mut temp = None;
        if Compression::detect(&head[..n]) != Compression::None {
            let tp = crate::store::temp_name(tmp_dir, "archive");
            let mut out = File::create_new(&tp).map_err(io_err)?;
            temp = Some(TempFile(tp.clone()));
            let (mut r, _) = decompress(file).map_err(io_err)?;
            io::copy(&mut r, &mut out).map_err(io_err)?;
            file = File::open(&tp).map_err(io_err)?;
        }
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        {
            let mut ar = tar::Archive::new(&mut file);
            let entries = ar.entries_with_seek().map_err(|e| SourceError::Archive {
                archive: name.clone(),
                reason: e.to_string(),
            })?;
            for e in entries {
                let e = e.map_err(|e| SourceError::Archive {
                    archive: name.clone(),
                    reason: e.to_string(),
                })?;
                let p = clean(&String::from_utf8_lossy(&e.path_bytes()));
                match e.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        members.insert(p, (e.raw_file_position(), e.size()));
                    }
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        if let Some(t) = e.link_name_bytes() {
                            let t = String::from_utf8_lossy(&t).into_owned();
                            let base = Path::new(&p)
                                .parent()
                                .map(|b| b.to_string_lossy().into_owned());
                            let target = if e.header().entry_type() == tar::EntryType::Symlink
                                && !t.starts_with('/')
                            {
                                resolve_rel(base.as_deref().unwrap_or(""), &t)
                            } else {
                                clean(&t)
                            };
                            links.insert(p, target);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            file,
            members,
            links,
            name,
            _temp: temp,
        })
    }

    fn locate(&self, path: &str) -> Option<(u64, u64)> {
        let mut p = clean(path);
        for _ in 0..8 {
            if let Some(m) = self.members.get(&p) {
                return Some(*m);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    pub fn contains(&self, path: &str) -> bool {
        self.locate(path).is_some()
    }

    /// A reader over the member `path` (following links inside the archive).
    pub fn open_member(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), SourceError> {
        let (off, size) = self
            .locate(path)
            .ok_or_else(|| SourceError::MissingMember {
                archive: self.name.clone(),
                member: path.to_string(),
            })?;
        Ok((
            Box::new(Member {
                file: &self.file,
                off,
                left: size,
            }),
            size,
        ))
    }

    pub fn read_member(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let (mut r, _) = self.open_member(path)?;
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| SourceError::Io {
            what: format!("{}:{path}", self.name),
            err: e,
        })?;
        Ok(v)
    }
}

fn resolve_rel(base: &str, target: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Reads one member with positioned reads, so several members can be read at once.
struct Member<'a> {
    file: &'a File,
    off: u64,
    left: u64,
}

impl Read for Member<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.off)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.off += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}
