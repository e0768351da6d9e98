-- hull-image: manifests, their layers, unpacked layers, tags and holds.
-- IF NOT EXISTS adopts the tables of a hull.db made before hull-db kept user_version.
CREATE TABLE IF NOT EXISTS image_manifests (
    digest TEXT PRIMARY KEY,
    config_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT,
    added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_manifest_layers (
    manifest TEXT NOT NULL REFERENCES image_manifests(digest) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    blob TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    PRIMARY KEY (manifest, idx)
);
CREATE INDEX IF NOT EXISTS image_manifest_layers_chain ON image_manifest_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    tar_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_tags (
    name TEXT PRIMARY KEY,
    manifest TEXT NOT NULL REFERENCES image_manifests(digest)
);
CREATE TABLE IF NOT EXISTS image_holders (
    manifest TEXT NOT NULL REFERENCES image_manifests(digest),
    holder TEXT NOT NULL,
    PRIMARY KEY (manifest, holder)
);
