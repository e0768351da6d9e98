-- hull-engine: containers. A row is written before any kernel object of the container exists
-- (intent first), and every state change is one transaction.
CREATE TABLE engine_containers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    image         TEXT NOT NULL,
    image_id      TEXT NOT NULL,
    command       TEXT NOT NULL,
    created       TEXT NOT NULL,
    -- created | starting | running | stopping | exited | removing
    state         TEXT NOT NULL,
    -- The engine's settings of the container (JSON): --rm, stop signal, network, ports...
    settings      TEXT NOT NULL,
    monitor_pid   INTEGER,
    monitor_start INTEGER,
    pid           INTEGER,
    started       TEXT,
    finished      TEXT,
    exit_code     INTEGER,
    -- Why it exited when it was not its own doing (monitor killed, start failed).
    reason        TEXT
);
