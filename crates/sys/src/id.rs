//! The one container-id rule, shared by the runtime (state directory), cgroups (`hull-<id>`) and
//! net (attachment rows, veth names derived from it): an id that one of them accepts, all accept.
//!
//! runc's rule (`^[\w+\-\.]+$`), minus `.` and `..`, which would name a parent or the directory
//! itself. The length bound is what the longest name derived from an id can hold: the default
//! cgroup directory `hull-<id>` is one path component, at most NAME_MAX (255) bytes. Veth names
//! (IFNAMSIZ) are derived from a hash of the id, so they put no bound on it.

/// The most bytes an id may have: `hull-` + id must fit in one NAME_MAX path component.
pub const MAX_ID_LEN: usize = 255 - "hull-".len();

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("container id is empty")]
    Empty,
    #[error("container id {0:?} names a directory (\".\" or \"..\")")]
    Dots(String),
    #[error("container id {id:?} is {len} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong { id: String, len: usize },
    #[error("container id {id:?} has {bad:?}; only letters, digits and _ + - . are allowed")]
    BadChar { id: String, bad: char },
}

/// Checks `id` against the rule.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id == "." || id == ".." {
        return Err(IdError::Dots(id.to_string()));
    }
    if let Some(bad) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        return Err(IdError::BadChar {
            id: id.to_string(),
            bad,
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            id: id.to_string(),
            len: id.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_ids() {
        for id in [
            "a",
            "a+b",
            "A_b-c.d",
            "...",
            "-x",
            &"f".repeat(64),
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(validate_id(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert!(matches!(validate_id("."), Err(IdError::Dots(_))));
        assert!(matches!(validate_id(".."), Err(IdError::Dots(_))));
        for (id, bad) in [
            ("a/b", '/'),
            ("a b", ' '),
            ("a\0", '\0'),
            ("é", 'é'),
            ("a:b", ':'),
        ] {
            assert!(
                matches!(validate_id(id), Err(IdError::BadChar { bad: b, .. }) if b == bad),
                "{id:?}"
            );
        }
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(
            matches!(validate_id(&long), Err(IdError::TooLong { len, .. }) if len == MAX_ID_LEN + 1)
        );
    }
}
