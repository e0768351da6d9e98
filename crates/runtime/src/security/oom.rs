//! `process.oomScoreAdj`, written by the runtime for the container process before it runs
//! user code.

use super::error::SecurityError;

/// Writes `value` to /proc/<pid>/oom_score_adj. Lowering it below the floor the process
/// inherited needs CAP_SYS_RESOURCE; without it the kernel answers EACCES, reported as such.
pub fn set_oom_score_adj(pid: i32, value: i32) -> Result<(), SecurityError> {
    if !(-1000..=1000).contains(&value) {
        return Err(SecurityError::OomRange(value));
    }
    let path = std::path::PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
    std::fs::write(&path, value.to_string()).map_err(|source| {
        if source.raw_os_error() == Some(libc::EACCES) {
            let current = std::fs::read_to_string(&path)
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
            return SecurityError::OomDenied { value, current };
        }
        SecurityError::Oom {
            value,
            path: path.clone(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_named() {
        let err = set_oom_score_adj(std::process::id().try_into().expect("pid"), 1001).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.oomScoreAdj: 1001 is outside -1000..=1000"
        );
    }
}
