//! `hull images` (`image ls`): docker's columns, `REPO[:TAG]` argument, filters, quiet and
//! template output.

use anyhow::bail;
use clap::Args;
use hull_image::store::ImageInfo;
use hull_image::{reference, ImageStore};

use super::format;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only images of this repository (and tag), e.g. busybox or busybox:1.36; * and ? match
    /// as in docker's reference filter
    reference: Option<String>,
    /// Show all images (hull stores no intermediate build images, so this is every image
    /// either way)
    #[arg(short, long)]
    all: bool,
    /// Only image ids, one per image
    #[arg(short, long)]
    quiet: bool,
    /// Full image ids (sha256:...)
    #[arg(long)]
    no_trunc: bool,
    /// A DIGEST column: the manifest digest (what `pull` printed, `repo@sha256:...` pulls)
    #[arg(long)]
    digests: bool,
    /// Filter: dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE,
    /// label=KEY or label=KEY=VALUE (repeatable; all must match, but any one reference does)
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// table (default), json (one object per line), or a template such as
    /// '{{.Repository}}:{{.Tag}}'
    #[arg(long, default_value = "table")]
    format: String,
}

/// Titles of the fields for a `table ...` template, as docker's.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
];

/// One line of the table: an image under one of its names (or `<none>`).
struct Row<'a> {
    info: &'a ImageInfo,
    repo: String,
    tag: String,
}

enum Filter {
    Dangling(bool),
    Reference(String),
    Before(i64),
    Since(i64),
    Label(String, Option<String>),
}

fn created(i: &ImageInfo) -> i64 {
    i.created
        .as_deref()
        .and_then(format::parse_rfc3339)
        .unwrap_or(0)
}

fn parse_filters(store: Option<&ImageStore>, a: &ListArgs) -> anyhow::Result<Vec<Filter>> {
    let mut out = Vec::new();
    if let Some(r) = &a.reference {
        out.push(Filter::Reference(r.clone()));
    }
    for f in &a.filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("--filter {f:?}: expected KEY=VALUE");
        };
        let time_of = |image: &str| -> anyhow::Result<i64> {
            let store = store.ok_or_else(|| anyhow::anyhow!("image {image:?} not found"))?;
            let m = store.resolve(image)?;
            let id = store.image_id(&m)?;
            Ok(store
                .list()?
                .iter()
                .find(|i| i.id == id)
                .map(created)
                .unwrap_or(0))
        };
        out.push(match k {
            "dangling" => match v {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => bail!("--filter dangling={v}: expected true or false"),
            },
            "reference" => Filter::Reference(v.to_string()),
            "before" => Filter::Before(time_of(v)?),
            "since" => Filter::Since(time_of(v)?),
            "label" => match v.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(v.to_string(), None),
            },
            other => bail!(
                "--filter {other:?} is not supported (dangling, reference, before, since, label)"
            ),
        });
    }
    Ok(out)
}

/// Glob match as Go's path.Match: `*` and `?` stop at `/`.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pat[1..], s) || (s.first().is_some_and(|c| *c != b'/') && glob(pat, &s[1..]))
        }
        (Some(b'?'), Some(c)) => *c != b'/' && glob(&pat[1..], &s[1..]),
        (Some(p), Some(c)) => p == c && glob(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// docker's reference filter: a pattern with a tag matches `repo:tag`, one without matches
/// the repository; short names ("busybox") match their docker.io names.
fn matches_reference(pat: &str, repo: &str, tag: &str) -> bool {
    let last = pat.rsplit('/').next().unwrap_or(pat);
    let (prepo, ptag) = match last.rfind(':') {
        Some(i) => (&pat[..pat.len() - last.len() + i], Some(&last[i + 1..])),
        None => (pat, None),
    };
    let short = |r: &str| reference::display(&format!("{r}:x")).0;
    let repo_ok =
        glob(prepo.as_bytes(), repo.as_bytes()) || glob(short(prepo).as_bytes(), repo.as_bytes());
    repo_ok && ptag.is_none_or(|t| glob(t.as_bytes(), tag.as_bytes()))
}

/// Whether `row` passes: every filter must, except that reference patterns (the `REPO[:TAG]`
/// argument among them) are alternatives, as docker's.
fn keep(store: Option<&ImageStore>, row: &Row<'_>, filters: &[Filter]) -> bool {
    let patterns: Vec<&str> = filters
        .iter()
        .filter_map(|f| match f {
            Filter::Reference(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    let named = !row.info.names.is_empty();
    let matched = named
        && patterns
            .iter()
            .any(|p| matches_reference(p, &row.repo, &row.tag));
    if !patterns.is_empty() && !matched {
        return false;
    }
    filters.iter().all(|f| match f {
        Filter::Dangling(d) => named != *d,
        Filter::Reference(_) => true,
        Filter::Before(t) => created(row.info) < *t,
        Filter::Since(t) => created(row.info) > *t,
        Filter::Label(k, v) => {
            let labels = store
                .and_then(|s| s.blobs().read(&row.info.id).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|c| c["config"]["Labels"].clone())
                .unwrap_or_default();
            match (&labels[k.as_str()], v) {
                (serde_json::Value::String(have), Some(want)) => have == want,
                (serde_json::Value::String(_), None) => true,
                _ => false,
            }
        }
    })
}

fn short_id(i: &ImageInfo, full: bool) -> String {
    if full {
        i.id.to_string()
    } else {
        i.id.short().to_string()
    }
}

fn json_row(r: &Row<'_>, no_trunc: bool) -> serde_json::Value {
    serde_json::json!({
        "ID": short_id(r.info, no_trunc),
        "Repository": r.repo,
        "Tag": r.tag,
        "Digest": r.info.digest.to_string(),
        "CreatedAt": r.info.created.clone().unwrap_or_default(),
        "CreatedSince": format::age(r.info.created.as_deref()),
        "Size": format::size(r.info.size),
        "Containers": r.info.holders.len().to_string(),
    })
}

/// Lists the images of `store` (none when the root does not exist yet).
pub fn list(store: Option<&ImageStore>, a: &ListArgs) -> anyhow::Result<()> {
    let _ = a.all; // every image is listed: there are no intermediate ones to hide
    let images = match store {
        Some(s) => s.list()?,
        None => Vec::new(),
    };
    let filters = parse_filters(store, a)?;
    let mut rows = Vec::new();
    for i in &images {
        let names: Vec<(String, String)> = if i.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.names.iter().map(|n| reference::display(n)).collect()
        };
        for (repo, tag) in names {
            let row = Row { info: i, repo, tag };
            if keep(store, &row, &filters) {
                rows.push(row);
            }
        }
    }
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(&r.info.id) {
                println!("{}", short_id(r.info, a.no_trunc));
            }
        }
        return Ok(());
    }
    match a.format.as_str() {
        "table" => {
            let mut header = vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
            if a.digests {
                header.insert(2, "DIGEST");
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut c = vec![
                        r.repo.clone(),
                        r.tag.clone(),
                        short_id(r.info, a.no_trunc),
                        format::age(r.info.created.as_deref()),
                        format::size(r.info.size),
                    ];
                    if a.digests {
                        c.insert(2, r.info.digest.to_string());
                    }
                    c
                })
                .collect();
            format::table(&header, &cells);
        }
        "json" => {
            for r in &rows {
                println!("{}", json_row(r, a.no_trunc));
            }
        }
        tmpl if tmpl.contains("{{") => {
            let rows: Vec<serde_json::Value> =
                rows.iter().map(|r| json_row(r, a.no_trunc)).collect();
            format::print_json_rows(tmpl, &rows, HEADERS)?;
        }
        other => bail!("--format {other:?}: expected table, json or a template like '{{{{.ID}}}}'"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{glob, matches_reference};

    #[test]
    fn reference_patterns() {
        assert!(glob(b"bu*", b"busybox"));
        assert!(!glob(b"*", b"a/b"));
        assert!(matches_reference("busybox", "busybox", "latest"));
        assert!(matches_reference("busybox:1.36", "busybox", "1.36"));
        assert!(!matches_reference("busybox:1.36", "busybox", "latest"));
        assert!(matches_reference(
            "docker.io/library/busybox",
            "busybox",
            "x"
        ));
        assert!(matches_reference(
            "localhost:5000/a/*",
            "localhost:5000/a/b",
            "v1"
        ));
        assert!(!matches_reference("alpine", "busybox", "latest"));
        assert!(matches_reference("*:v?", "app", "v1"));
    }
}
