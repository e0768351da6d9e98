-- hull-net: networks, address leases, attachments and published ports.
-- IF NOT EXISTS adopts the tables of a hull.db made before hull-db kept user_version.
CREATE TABLE IF NOT EXISTS net_networks (
    name        TEXT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    bridge      TEXT NOT NULL UNIQUE,
    subnet      TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    range_start INTEGER NOT NULL,
    range_end   INTEGER NOT NULL,
    internal    INTEGER NOT NULL,
    masquerade  INTEGER NOT NULL,
    mtu         INTEGER NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_leases (
    network      TEXT NOT NULL REFERENCES net_networks(name),
    ip           INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    PRIMARY KEY (network, ip),
    UNIQUE (container_id, ifname, network)
);
CREATE TABLE IF NOT EXISTS net_attachments (
    container_id TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    network      TEXT NOT NULL,
    netns_path   TEXT NOT NULL,
    netns_dev    INTEGER NOT NULL,
    netns_ino    INTEGER NOT NULL,
    host_veth    TEXT NOT NULL UNIQUE,
    ip           INTEGER NOT NULL,
    prefix       INTEGER NOT NULL,
    gateway      INTEGER,
    mac          TEXT NOT NULL DEFAULT '',
    created      INTEGER NOT NULL,
    PRIMARY KEY (container_id, ifname)
);
CREATE TABLE IF NOT EXISTS net_ports (
    proto          TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    container_ip   TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_id   TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
-- hull-net's own schema marker, replaced by user_version.
DROP TABLE IF EXISTS net_schema;
