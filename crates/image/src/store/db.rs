//! The queries on the image tables of the engine's SQLite file (`hull.db`, shared with other
//! crates, so every table here is prefixed `image_`). hull-db opens the file and its
//! migrations create these tables.

use std::borrow::Borrow;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// Errors from the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Open(#[from] hull_db::DbError),
    #[error("image database: {0}")]
    Query(rusqlite::Error),
}

// Not `#[from]`: the message already includes the cause, and a source would print it twice.
impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Query(e)
    }
}

/// One row of `image_manifest_layers`.
#[derive(Debug, Clone)]
pub struct LayerRow {
    pub blob: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

/// An image record to add.
#[derive(Debug, Clone, Copy)]
pub struct NewImage<'a> {
    pub manifest: &'a str,
    pub config: &'a str,
    pub media_type: &'a str,
    pub size: u64,
    pub created: Option<&'a str>,
    pub layers: &'a [LayerRow],
    pub names: &'a [String],
}

/// One image (a manifest) with its names.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub manifest: String,
    pub config: String,
    pub media_type: String,
    pub created: Option<String>,
    pub added: i64,
    pub names: Vec<String>,
}

/// The image tables of hull.db, on a connection the store owns (`C = Connection`) or
/// borrows from its caller (`&Connection`: the engine's, so one process opens hull.db once).
#[derive(Debug)]
pub struct Db<C = Connection> {
    pub(crate) conn: C,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Db {
    /// Opens (creating if needed) `<root>/hull.db`.
    pub fn open(root: &Path) -> Result<Self, DbError> {
        Ok(Self {
            conn: hull_db::open(root)?,
        })
    }
}

impl<C: Borrow<Connection>> Db<C> {
    /// The image tables on `conn`, a connection to hull.db (migrated by hull-db's open).
    pub fn with_conn(conn: C) -> Self {
        Self { conn }
    }

    /// Transactions are `unchecked_transaction`s on it: while the connection is lent to a
    /// `Db`, its owner cannot hold a transaction of its own (that needs `&mut`), so none nests.
    fn conn(&self) -> &Connection {
        self.conn.borrow()
    }

    pub fn has_layer(&self, chain: &str) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM image_layers WHERE chain_id = ?1",
                [chain],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn add_layer(
        &self,
        chain: &str,
        diff: &str,
        parent: Option<&str>,
        tar_size: u64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO image_layers (chain_id, diff_id, parent, tar_size) VALUES (?1, ?2, ?3, ?4)",
            params![chain, diff, parent, to_i64(tar_size)],
        )?;
        Ok(())
    }

    /// Records a manifest, its layers and names in one transaction.
    pub fn add_image(&mut self, img: &NewImage<'_>) -> Result<(), DbError> {
        let NewImage {
            manifest,
            config,
            media_type,
            size,
            created,
            layers,
            names,
        } = *img;
        let tx = self.conn().unchecked_transaction()?;
        let added = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| to_i64(d.as_secs()))
            .unwrap_or(0);
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO image_manifests (digest, config_digest, media_type, size, created, added)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![manifest, config, media_type, to_i64(size), created, added],
        )?;
        if fresh > 0 {
            for (i, l) in layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_manifest_layers (manifest, idx, blob, media_type, size, diff_id, chain_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![manifest, to_i64(i as u64), l.blob, l.media_type, to_i64(l.size), l.diff_id, l.chain_id],
                )?;
            }
        }
        for n in names {
            tx.execute(
                "INSERT OR REPLACE INTO image_tags (name, manifest) VALUES (?1, ?2)",
                params![n, manifest],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn tag(&self, name: &str, manifest: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO image_tags (name, manifest) VALUES (?1, ?2)",
            params![name, manifest],
        )?;
        Ok(())
    }

    pub fn untag(&self, name: &str) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .execute("DELETE FROM image_tags WHERE name = ?1", [name])?
            > 0)
    }

    pub fn manifest_for_tag(&self, name: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT manifest FROM image_tags WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// (manifest, config) of the images whose manifest or config digest hex starts with
    /// `prefix`, newest first.
    pub fn manifests_by_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let pat = format!("sha256:{prefix}%");
        let mut st = self.conn().prepare(
            "SELECT digest, config_digest FROM image_manifests
             WHERE digest LIKE ?1 OR config_digest LIKE ?1 ORDER BY added DESC, digest",
        )?;
        let rows = st.query_map([pat], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn images(&self) -> Result<Vec<ImageRow>, DbError> {
        let mut st = self.conn().prepare(
            "SELECT digest, config_digest, media_type, created, added FROM image_manifests ORDER BY added DESC, digest",
        )?;
        let mut out: Vec<ImageRow> = st
            .query_map([], |r| {
                Ok(ImageRow {
                    manifest: r.get(0)?,
                    config: r.get(1)?,
                    media_type: r.get(2)?,
                    created: r.get(3)?,
                    added: r.get(4)?,
                    names: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = self
            .conn()
            .prepare("SELECT name, manifest FROM image_tags ORDER BY name")?;
        let tags: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (name, m) in tags {
            if let Some(img) = out.iter_mut().find(|i| i.manifest == m) {
                img.names.push(name);
            }
        }
        Ok(out)
    }

    pub fn image(&self, manifest: &str) -> Result<Option<ImageRow>, DbError> {
        Ok(self.images()?.into_iter().find(|i| i.manifest == manifest))
    }

    pub fn layers_of(&self, manifest: &str) -> Result<Vec<LayerRow>, DbError> {
        let mut st = self.conn().prepare(
            "SELECT blob, media_type, size, diff_id, chain_id FROM image_manifest_layers WHERE manifest = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([manifest], |r| {
            Ok(LayerRow {
                blob: r.get(0)?,
                media_type: r.get(1)?,
                size: to_u64(r.get(2)?),
                diff_id: r.get(3)?,
                chain_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn holders(&self, manifest: &str) -> Result<Vec<String>, DbError> {
        let mut st = self
            .conn()
            .prepare("SELECT holder FROM image_holders WHERE manifest = ?1 ORDER BY holder")?;
        let rows = st.query_map([manifest], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn hold(&self, manifest: &str, holder: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO image_holders (manifest, holder) VALUES (?1, ?2)",
            params![manifest, holder],
        )?;
        Ok(())
    }

    pub fn release(&self, holder: &str) -> Result<(), DbError> {
        self.conn()
            .execute("DELETE FROM image_holders WHERE holder = ?1", [holder])?;
        Ok(())
    }

    /// Each layer's uncompressed tar size, by chain id.
    pub fn layer_tar_sizes(&self) -> Result<std::collections::HashMap<String, u64>, DbError> {
        let mut st = self
            .conn()
            .prepare("SELECT chain_id, tar_size FROM image_layers")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (k, v) = row?;
            out.insert(k, to_u64(v));
        }
        Ok(out)
    }

    /// The chain ids some manifest uses.
    pub fn used_layers(&self) -> Result<std::collections::HashSet<String>, DbError> {
        let mut st = self
            .conn()
            .prepare("SELECT chain_id FROM image_manifest_layers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One more `image mount` of `manifest`.
    pub fn add_mount(&self, manifest: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO image_mounts (manifest, count) VALUES (?1, 1)
             ON CONFLICT(manifest) DO UPDATE SET count = count + 1",
            [manifest],
        )?;
        Ok(())
    }

    /// Sets the mount count of `manifest`; zero forgets it.
    pub fn set_mount(&self, manifest: &str, count: u64) -> Result<(), DbError> {
        if count == 0 {
            self.conn()
                .execute("DELETE FROM image_mounts WHERE manifest = ?1", [manifest])?;
        } else {
            self.conn().execute(
                "INSERT OR REPLACE INTO image_mounts (manifest, count) VALUES (?1, ?2)",
                params![manifest, to_i64(count)],
            )?;
        }
        Ok(())
    }

    /// How many `image mount`s of `manifest` are counted (one if the mount is older than the
    /// count: it has at least its own).
    pub fn mount_count(&self, manifest: &str) -> Result<u64, DbError> {
        let n: Option<i64> = self
            .conn()
            .query_row(
                "SELECT count FROM image_mounts WHERE manifest = ?1",
                [manifest],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.map_or(1, to_u64).max(1))
    }

    /// Deletes a manifest row with its tags, holders and layer list.
    pub fn delete_manifest(&mut self, manifest: &str) -> Result<(), DbError> {
        let tx = self.conn().unchecked_transaction()?;
        tx.execute("DELETE FROM image_tags WHERE manifest = ?1", [manifest])?;
        tx.execute("DELETE FROM image_holders WHERE manifest = ?1", [manifest])?;
        tx.execute("DELETE FROM image_mounts WHERE manifest = ?1", [manifest])?;
        tx.execute(
            "DELETE FROM image_manifest_layers WHERE manifest = ?1",
            [manifest],
        )?;
        tx.execute("DELETE FROM image_manifests WHERE digest = ?1", [manifest])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the row of layer `chain` if no manifest uses it (a failed commit's or import's own
    /// layer);
    /// whether it did, so the caller removes the layer's dir only then.
    pub fn forget_layer(&self, chain: &str) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "DELETE FROM image_layers WHERE chain_id = ?1 AND chain_id NOT IN (SELECT chain_id FROM image_manifest_layers)",
            [chain],
        )?;
        let used: bool = self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM image_manifest_layers WHERE chain_id = ?1)",
            [chain],
            |r| r.get(0),
        )?;
        Ok(n > 0 || !used)
    }

    /// Layers no manifest uses any more; their rows are deleted and their chain ids returned.
    pub fn take_unused_layers(&self) -> Result<Vec<String>, DbError> {
        let mut st = self.conn().prepare(
            "SELECT chain_id FROM image_layers WHERE chain_id NOT IN (SELECT chain_id FROM image_manifest_layers)",
        )?;
        let ids: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        for id in &ids {
            self.conn()
                .execute("DELETE FROM image_layers WHERE chain_id = ?1", [id])?;
        }
        Ok(ids)
    }

    /// Every blob digest some manifest still needs (manifests, configs, layers).
    pub fn live_blobs(&self) -> Result<std::collections::HashSet<String>, DbError> {
        let mut set = std::collections::HashSet::new();
        for sql in [
            "SELECT digest FROM image_manifests",
            "SELECT config_digest FROM image_manifests",
            "SELECT blob FROM image_manifest_layers",
        ] {
            let mut st = self.conn().prepare(sql)?;
            for d in st.query_map([], |r| r.get::<_, String>(0))? {
                set.insert(d?);
            }
        }
        Ok(set)
    }

    pub fn live_layers(&self) -> Result<std::collections::HashSet<String>, DbError> {
        let mut st = self.conn().prepare("SELECT chain_id FROM image_layers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
