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

/// Parses `name` as a registry reference (tag defaults to `latest`).
pub fn parse(name: &str) -> Result<Reference, ReferenceError> {
    name.parse::<Reference>()
        .map_err(|e| ReferenceError::Invalid(name.to_string(), e.to_string()))
}

/// The full `registry/repository:tag` form hull stores a name under.
pub fn normalize_tag(name: &str) -> Result<String, ReferenceError> {
    let r = parse(name)?;
    if r.digest().is_some() {
        return Err(ReferenceError::Digest(name.to_string()));
    }
    Ok(format!(
        "{}/{}:{}",
        r.registry(),
        r.repository(),
        r.tag().unwrap_or("latest")
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
    }
}
