//! Image names: docker-style short names normalized to full references
//! (`busybox` -> `docker.io/library/busybox:latest`), and how they print.

use oci_spec::distribution::Reference;

/// Errors from parsing an image name.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image name {0:?}: {1}")]
    Invalid(String, String),
    #[error("image name {0:?} must name a tag, not a digest")]
    Digest(String),
}

/// The parts of an image reference, normalized as docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn is_domain(c: &str) -> bool {
    c.contains('.')
        || c.contains(':')
        || c == "localhost"
        || c.bytes().any(|b| b.is_ascii_uppercase())
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => (addr, rest.strip_prefix(':')),
            None => return false,
        },
        None => match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        },
    };
    let host_ok = if h.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Splits and normalizes `name` (`busybox`, `host:5000/a/b:tag`, `repo@sha256:...`) without
/// regular expressions (compiling the spec's regex costs tens of milliseconds per process).
pub fn parts(name: &str) -> Result<Parts, ReferenceError> {
    let bad = |why: &str| ReferenceError::Invalid(name.to_string(), why.to_string());
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => {
            d.parse::<crate::digest::Digest>()
                .map_err(|e| bad(&e.to_string()))?;
            (r, Some(d.to_string()))
        }
        None => (name, None),
    };
    let (path, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
        _ => (rest, None),
    };
    if let Some(t) = &tag {
        if !valid_tag(t) {
            return Err(bad("invalid tag"));
        }
    }
    let (registry, repo) = match path.split_once('/') {
        Some((first, rest)) if is_domain(first) => {
            if !valid_host(first) {
                return Err(bad("invalid registry host"));
            }
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), path.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        "docker.io".to_string()
    } else {
        registry
    };
    let repository = if registry == "docker.io" && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo
    };
    if repository.is_empty() || !repository.split('/').all(valid_component) {
        return Err(bad(
            "repository must be lowercase letters, digits and separators",
        ));
    }
    if registry.len() + repository.len() + 1 > 255 {
        return Err(bad("name longer than 255 characters"));
    }
    Ok(Parts {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Parses `name` as a registry reference (tag defaults to `latest`).
pub fn parse(name: &str) -> Result<Reference, ReferenceError> {
    let p = parts(name)?;
    Ok(match (p.tag, p.digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(p.registry, p.repository, t, d),
        (None, Some(d)) => Reference::with_digest(p.registry, p.repository, d),
        (t, None) => Reference::with_tag(
            p.registry,
            p.repository,
            t.unwrap_or_else(|| "latest".into()),
        ),
    })
}

/// The full `registry/repository:tag` form hull stores a name under.
pub fn normalize_tag(name: &str) -> Result<String, ReferenceError> {
    let p = parts(name)?;
    if p.digest.is_some() {
        return Err(ReferenceError::Digest(name.to_string()));
    }
    Ok(format!(
        "{}/{}:{}",
        p.registry,
        p.repository,
        p.tag.as_deref().unwrap_or("latest")
    ))
}

/// Splits a stored name into (repository as users write it, tag).
pub fn display(stored: &str) -> (String, String) {
    let (repo, tag) = match stored.rfind(':') {
        Some(i) if !stored[i..].contains('/') => (&stored[..i], &stored[i + 1..]),
        _ => (stored, "latest"),
    };
    let short = repo
        .strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .unwrap_or(repo);
    (short.to_string(), tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(
            normalize_tag("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_tag("localhost:5000/a/b:v1").unwrap(),
            "localhost:5000/a/b:v1"
        );
        assert_eq!(
            display("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            display("localhost:5000/a:v1"),
            ("localhost:5000/a".into(), "v1".into())
        );
        assert!(normalize_tag("UPPER/Case").is_err());
        assert!(normalize_tag("a//b").is_err());
        assert!(normalize_tag("a:b:c").is_err());
        assert_eq!(
            normalize_tag("index.docker.io/x/y").unwrap(),
            "docker.io/x/y:latest"
        );
        assert_eq!(normalize_tag("[::1]:5000/x:t").unwrap(), "[::1]:5000/x:t");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = parse(&format!("localhost:5000/a@{d}")).unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.digest()),
            ("localhost:5000", "a", Some(d))
        );
        assert!(normalize_tag(&format!("a@{d}")).is_err());
        assert!(parse("a@sha256:short").is_err());
    }
}
