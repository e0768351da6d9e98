//! Container names on user networks, resolved without a DNS server: every container on a user
//! network has, in its hosts file, a section listing the others on its networks (their address
//! and names), kept current as containers come and go. hull.db's write lock is the one lock:
//! a container's names are recorded and every affected hosts file rewritten in one write
//! transaction ([`publish`]), and a detach ([`refresh`], from the transaction that deletes the
//! attachment) rewrites the peers' files before it commits, so two changes never interleave.
//!
//! The files are bind-mounted into running containers: they are written over in place (their
//! inode kept), and only the marked section is replaced, so lines a user added stay. As on
//! docker's and podman's default networks, the default network gives no names.

use std::net::Ipv4Addr;
use std::path::Path;

use hull_sys::overwrite::{overwrite, Missing};
use rusqlite::{params, Connection};

use crate::error::NetError;
use crate::etc::EtcError;
use crate::network::DEFAULT_NETWORK;

/// First line of the section.
pub const BEGIN: &str =
    "# hull: containers on this container's networks (hull rewrites this section)";
/// Last line of the section.
pub const END: &str = "# hull: end of containers";

/// A peer's line: its address and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ip: Ipv4Addr,
    pub names: String,
}

/// `hosts` with its section holding `entries` (in place of the old one, or appended), and no
/// section when there are none; every other line kept as it was.
pub fn with_section(hosts: &str, entries: &[Entry]) -> String {
    let lines: Vec<&str> = hosts.lines().collect();
    let (before, after) = match lines.iter().position(|l| *l == BEGIN) {
        Some(begin) => {
            // A section without its end (a write cut short) was all ours to its last line.
            let end = lines[begin..]
                .iter()
                .position(|l| *l == END)
                .map_or(lines.len(), |e| begin + e + 1);
            (&lines[..begin], &lines[end..])
        }
        None => (&lines[..], &lines[lines.len()..]),
    };
    let mut out = String::new();
    for l in before {
        out.push_str(l);
        out.push('\n');
    }
    if !entries.is_empty() {
        out.push_str(BEGIN);
        out.push('\n');
        for e in entries {
            out.push_str(&format!("{}\t{}\n", e.ip, e.names));
        }
        out.push_str(END);
        out.push('\n');
    }
    for l in after {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Records `names` and `hosts_file` on the container's attachments and rewrites the section
/// of its own hosts file and of every peer's, under hull.db's write lock. The container's own
/// file must be writable; a peer's that is gone (its container being removed) is skipped.
pub fn publish(
    conn: &mut Connection,
    container: &str,
    names: &[String],
    hosts_file: &Path,
) -> Result<(), NetError> {
    let tx = hull_db::write_tx(conn)?;
    tx.execute(
        "UPDATE net_attachments SET dns_names = ?2, hosts_file = ?3 WHERE container_id = ?1",
        params![container, names.join(" "), hosts_file.display().to_string()],
    )?;
    let networks: Vec<String> = {
        let mut stmt = tx.prepare("SELECT network FROM net_attachments WHERE container_id = ?1")?;
        let rows = stmt.query_map([container], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for network in &networks {
        refresh(&tx, network, Some(container))?;
    }
    tx.commit()?;
    Ok(())
}

/// Rewrites the section of every hosts file on `network` from the attachments `conn` sees (the
/// caller holds the write lock). A file that cannot be written is skipped, except `own`'s.
pub(crate) fn refresh(conn: &Connection, network: &str, own: Option<&str>) -> Result<(), NetError> {
    if network == DEFAULT_NETWORK {
        return Ok(());
    }
    let files: Vec<(String, String)> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT container_id, hosts_file FROM net_attachments
             WHERE network = ?1 AND hosts_file IS NOT NULL",
        )?;
        let rows = stmt.query_map([network], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (container, file) in files {
        let entries = peers(conn, &container)?;
        let path = Path::new(&file);
        match rewrite(path, &entries) {
            Err(source) if own == Some(container.as_str()) => {
                return Err(EtcError::Write { path: file, source }.into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// The others on the container's user networks that have names, by network and address.
fn peers(conn: &Connection, container: &str) -> Result<Vec<Entry>, NetError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT p.ip, p.dns_names FROM net_attachments p
         JOIN net_attachments me ON me.network = p.network
         WHERE me.container_id = ?1 AND p.container_id != ?1 AND p.network != ?2
           AND p.dns_names != ''
         ORDER BY p.network, p.ip",
    )?;
    let rows = stmt.query_map(params![container, DEFAULT_NETWORK], |r| {
        Ok(Entry {
            ip: Ipv4Addr::from(r.get::<_, u32>(0)?),
            names: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces the section of the hosts file at `path` in place, keeping the inode the
/// container's bind mount holds. A file that does not exist is not made.
fn rewrite(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path)?;
    let new = with_section(&old, entries);
    if new == old {
        return Ok(());
    }
    overwrite(path, new.as_bytes(), Missing::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: [u8; 4], names: &str) -> Entry {
        Entry {
            ip: Ipv4Addr::from(ip),
            names: names.to_string(),
        }
    }

    #[test]
    fn section_appended_replaced_and_removed_keeping_user_lines() {
        let base = "127.0.0.1\tlocalhost\n10.1.0.2\tme\n";
        let one = with_section(base, &[entry([10, 1, 0, 3], "web 0123456789ab")]);
        assert_eq!(
            one,
            format!("{base}{BEGIN}\n10.1.0.3\tweb 0123456789ab\n{END}\n")
        );
        // A user's line after the section, and one before, stay where they are.
        let edited = format!("{one}192.0.2.9\tmine\n")
            .replace("10.1.0.2\tme\n", "10.1.0.2\tme\n192.0.2.8\talso-mine\n");
        let two = with_section(
            &edited,
            &[entry([10, 1, 0, 3], "web"), entry([10, 1, 0, 4], "db")],
        );
        assert_eq!(
            two,
            format!(
                "127.0.0.1\tlocalhost\n10.1.0.2\tme\n192.0.2.8\talso-mine\n{BEGIN}\n\
                 10.1.0.3\tweb\n10.1.0.4\tdb\n{END}\n192.0.2.9\tmine\n"
            )
        );
        let none = with_section(&two, &[]);
        assert_eq!(
            none,
            "127.0.0.1\tlocalhost\n10.1.0.2\tme\n192.0.2.8\talso-mine\n192.0.2.9\tmine\n"
        );
        assert_eq!(with_section(&none, &[]), none);
    }

    #[test]
    fn rewrite_keeps_the_inode_and_cuts_to_length() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("hull-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        std::fs::write(&path, "127.0.0.1\tlocalhost\n").unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();
        rewrite(&path, &[entry([10, 1, 0, 3], "a-rather-long-name")]).unwrap();
        rewrite(&path, &[entry([10, 1, 0, 4], "b")]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("127.0.0.1\tlocalhost\n{BEGIN}\n10.1.0.4\tb\n{END}\n")
        );
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino);
        // A gone container's file is not made again.
        assert!(rewrite(&dir.join("gone"), &[entry([10, 1, 0, 4], "b")]).is_err());
        assert!(!dir.join("gone").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn section_cut_short_is_replaced_whole() {
        let torn = format!("127.0.0.1\tlocalhost\n{BEGIN}\n10.1.0.3\tweb\n10.1.0.");
        assert_eq!(
            with_section(&torn, &[entry([10, 1, 0, 5], "db")]),
            format!("127.0.0.1\tlocalhost\n{BEGIN}\n10.1.0.5\tdb\n{END}\n")
        );
        // A file without a final newline gets one before the section.
        assert_eq!(
            with_section("127.0.0.1\tlocalhost", &[entry([10, 1, 0, 5], "db")]),
            format!("127.0.0.1\tlocalhost\n{BEGIN}\n10.1.0.5\tdb\n{END}\n")
        );
    }
}
