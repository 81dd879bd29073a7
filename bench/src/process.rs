//! What the broker process spent: CPU time and peak memory, from /proc (Linux).

use serde::Serialize;

/// A reading of a process's counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Usage {
    /// User plus system CPU time, in seconds.
    pub(crate) cpu_seconds: f64,
    /// Peak resident set size, in KiB (VmHWM).
    pub(crate) peak_rss_kib: u64,
    /// Current resident set size, in KiB (VmRSS).
    pub(crate) rss_kib: u64,
}

/// The kernel's clock ticks per second for /proc/<pid>/stat times: 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `pid`'s counters, or `None` if it cannot be read.
pub(crate) fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    })
}
