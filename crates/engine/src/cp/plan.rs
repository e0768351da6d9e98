//! docker's rules for where `cp` puts what it copies, from the source's kind and spelling
//! (a trailing `/` or `/.`) and what the destination is: pure logic, shared by both directions.

/// What the source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub is_dir: bool,
    /// The path ends with `/.`: a directory's contents, not the directory itself.
    pub contents_only: bool,
    /// The path ends with `/`: it must be a directory.
    pub trailing_slash: bool,
    /// The last component (the name the copy gets inside an existing directory).
    pub base: String,
}

impl Source {
    pub fn new(path: &str, is_dir: bool) -> Source {
        let contents_only = path == "." || path.ends_with("/.");
        let trimmed = path.trim_end_matches("/.").trim_end_matches('/');
        let base = trimmed.rsplit('/').next().unwrap_or_default().to_string();
        Source {
            is_dir,
            // The root itself has no name: its contents are copied.
            contents_only: contents_only || base.is_empty() || base == ".",
            trailing_slash: path.ends_with('/'),
            base,
        }
    }
}

/// What is at the destination path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    Missing,
    Dir,
    File,
}

/// Where the copy goes: unpacked into the existing directory `dir`, its top entry named `name`
/// (`None`: the source directory's contents land in `dir` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub dir: String,
    pub name: Option<String>,
}

/// docker cp's table: a file into a dir keeps its name, over a file replaces it, at a missing
/// path takes that name; a dir into a dir goes inside it (its contents with `/.`), at a
/// missing path becomes it; a dir over a file is an error, so is a missing `dest/`.
pub(crate) fn plan(
    src: &Source,
    src_path: &str,
    dest_path: &str,
    dest: Dest,
) -> Result<Plan, String> {
    if !src.is_dir && (src.trailing_slash || src.contents_only && src_path.ends_with("/.")) {
        return Err(format!("{src_path}: not a directory"));
    }
    let (parent, last) = split(dest_path);
    let into_parent = || Plan {
        dir: parent.clone(),
        name: Some(last.clone()),
    };
    match (src.is_dir, dest) {
        (_, Dest::Dir) if src.is_dir && src.contents_only => Ok(Plan {
            dir: dest_path.to_string(),
            name: None,
        }),
        (_, Dest::Dir) => Ok(Plan {
            dir: dest_path.to_string(),
            name: Some(src.base.clone()),
        }),
        (true, Dest::File) => Err(format!("cannot copy a directory to a file: {dest_path}")),
        (false, Dest::File) => Ok(into_parent()),
        (false, Dest::Missing) if dest_path.ends_with('/') => Err(format!(
            "{dest_path}: no such directory (the destination directory must exist)"
        )),
        (_, Dest::Missing) if last.is_empty() || last == "." || last == ".." => {
            Err(format!("{dest_path}: no such directory"))
        }
        (_, Dest::Missing) => Ok(into_parent()),
    }
}

/// A path's parent (`.` or `/` when it has none) and last component, trailing slashes aside.
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", last)) => ("/".into(), last.into()),
        Some((parent, last)) => (parent.into(), last.into()),
        None if path.starts_with('/') => ("/".into(), String::new()),
        None => (".".into(), trimmed.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str, is_dir: bool, dest: &str, d: Dest) -> Result<(String, Option<String>), String> {
        plan(&Source::new(src, is_dir), src, dest, d).map(|p| (p.dir, p.name))
    }

    fn ok(dir: &str, name: Option<&str>) -> Result<(String, Option<String>), String> {
        Ok((dir.into(), name.map(String::from)))
    }

    #[test]
    fn a_file() {
        assert_eq!(p("/a/f", false, "/d", Dest::Dir), ok("/d", Some("f")));
        assert_eq!(p("/a/f", false, "/d/g", Dest::File), ok("/d", Some("g")));
        assert_eq!(
            p("f", false, "/d/new", Dest::Missing),
            ok("/d", Some("new"))
        );
        assert_eq!(p("f", false, "new", Dest::Missing), ok(".", Some("new")));
        assert_eq!(p("f", false, "/new", Dest::Missing), ok("/", Some("new")));
        assert!(p("f", false, "/d/new/", Dest::Missing)
            .unwrap_err()
            .contains("must exist"));
        assert!(p("f/", false, "/d", Dest::Dir)
            .unwrap_err()
            .contains("not a directory"));
    }

    #[test]
    fn a_directory() {
        assert_eq!(p("/a/src", true, "/d", Dest::Dir), ok("/d", Some("src")));
        assert_eq!(p("/a/src/", true, "/d", Dest::Dir), ok("/d", Some("src")));
        assert_eq!(p("/a/src/.", true, "/d", Dest::Dir), ok("/d", None));
        assert_eq!(
            p("/a/src", true, "/d/new", Dest::Missing),
            ok("/d", Some("new"))
        );
        assert_eq!(
            p("/a/src/.", true, "/d/new/", Dest::Missing),
            ok("/d", Some("new"))
        );
        assert!(p("/a/src", true, "/d/f", Dest::File)
            .unwrap_err()
            .contains("to a file"));
        assert_eq!(p("/", true, "/d", Dest::Dir), ok("/d", None));
    }
}
