-- hull-net: the names a container is known by on its networks and its hosts file, so that the
-- hosts file of every container on a user network lists the others (names resolved without a
-- DNS server). A row without a hosts file (hull-cni's) neither gets nor gives names.
ALTER TABLE net_attachments ADD COLUMN dns_names TEXT NOT NULL DEFAULT '';
ALTER TABLE net_attachments ADD COLUMN hosts_file TEXT;
