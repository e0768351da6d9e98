-- hull-engine: named and anonymous volumes (`<root>/volumes/<name>/_data`). A row is written
-- before its directory, and removed (after the in-use check, in one transaction) before it.
-- Which containers use a volume is read from engine_containers.settings, the one record of it.
CREATE TABLE engine_volumes (
    name      TEXT PRIMARY KEY,
    created   TEXT NOT NULL,
    -- JSON object of the --label K=V pairs.
    labels    TEXT NOT NULL,
    -- 1: made for one container (image VOLUME, `-v /path`), removed with it by rm -v / --rm.
    anonymous INTEGER NOT NULL
);
