//! hugetlb: per page size limits; on a hybrid host this controller may exist only on cgroup2.

use oci_spec::runtime::LinuxHugepageLimit;

use crate::error::CgroupError;
use crate::plan::Ctx;

const F: &str = "linux.resources.hugepageLimits";

/// "2MB" -> 2048 (kB), as /sys/kernel/mm/hugepages names sizes.
fn size_kb(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "KB" => 1,
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The page sizes this kernel supports, in the cgroup file spelling ("2MB", "1GB").
pub(crate) fn page_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<(u64, String)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let label = if kb >= 1 << 20 {
                format!("{}GB", kb >> 20)
            } else if kb >= 1 << 10 {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            };
            Some((kb, label))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

pub(crate) fn plan(cx: &mut Ctx, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    let sizes = page_sizes();
    for (i, l) in limits.iter().enumerate() {
        let f = format!("{F}[{i}]");
        let size = l.page_size();
        if size_kb(size).is_none() || !sizes.iter().any(|s| s == size) {
            return Err(CgroupError::invalid(
                format!("{f}.pageSize"),
                format!(
                    "{size:?} is not a huge page size of this kernel ({})",
                    sizes.join(", ")
                ),
            ));
        }
        if l.limit() < -1 {
            return Err(CgroupError::invalid(
                format!("{f}.limit"),
                format!("{} must be -1 (unlimited) or a byte count", l.limit()),
            ));
        }
        let t = cx.target("hugetlb", &f)?;
        let (file, value) = match (t.v2, l.limit()) {
            (true, -1) => (format!("hugetlb.{size}.max"), "max".to_string()),
            (true, v) => (format!("hugetlb.{size}.max"), v.to_string()),
            (false, v) => (format!("hugetlb.{size}.limit_in_bytes"), v.to_string()),
        };
        cx.write(t, &file, value, &format!("{f}.limit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size_kb("2MB"), Some(2048));
        assert_eq!(super::size_kb("1GB"), Some(1 << 20));
        assert_eq!(super::size_kb("2mb"), None);
        assert_eq!(super::size_kb("MB"), None);
    }
}
