-- hull-image: how many `image mount`s each mounted image has, so that only the last
-- `image unmount` unmounts it (as podman's), across hull processes.
CREATE TABLE IF NOT EXISTS image_mounts (
    manifest TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
