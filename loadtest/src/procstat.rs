//! Server-side cost from /proc: resident memory and CPU time of given PIDs.

/// Resident set size in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU seconds consumed so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// A snapshot of several processes.
#[derive(Debug, Clone)]
pub struct Sample {
    pub rss_kib: u64,
    pub cpu_secs: f64,
}

pub fn sample(pids: &[u32]) -> Sample {
    Sample {
        rss_kib: pids.iter().filter_map(|p| rss_kib(*p)).sum(),
        cpu_secs: pids.iter().filter_map(|p| cpu_secs(*p)).sum(),
    }
}
