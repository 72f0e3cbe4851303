//! Resident memory of this process, from `/proc/self/status` (Linux; elsewhere nothing is known).
//! Read by `GET /metrics` and by `bench` (where, with the service in process, it is the
//! service's memory plus the load generator's).

/// Tracks the peak resident set over one measured phase.
pub struct PeakRss {
    /// Whether the kernel's own high-water mark was reset at the start: then `VmHWM` is this
    /// phase's peak, not the whole process's.
    kernel_mark_reset: bool,
}

impl PeakRss {
    /// Starts a phase: resets the kernel's high-water mark to the current resident set (writing
    /// 5 to `clear_refs`, Linux ≥ 4.0); if that is not allowed, only samples count.
    pub fn start() -> Self {
        Self {
            kernel_mark_reset: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
        }
    }

    /// The phase's peak: the kernel's mark when it was reset, or else the highest sample.
    pub fn peak(&self, highest_sample: Option<u64>) -> Option<u64> {
        let mark = self
            .kernel_mark_reset
            .then(|| status_bytes("VmHWM:"))
            .flatten();
        mark.max(highest_sample).or_else(current_bytes)
    }
}

/// The resident set now.
pub fn current_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_resident_set_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = current_bytes().expect("VmRSS");
            assert!(rss > 1024 * 1024);
            assert!(PeakRss::start().peak(None).expect("a peak") >= 1024 * 1024);
        }
    }
}
