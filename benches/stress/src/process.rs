//! What the kernel says about this process: resident memory and CPU time.

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`), 0 where
/// there is no `/proc`.
pub(crate) fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory now, in KiB.
pub(crate) fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// The most resident memory the process has had, in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    status_kib("VmHWM")
}

/// User plus system CPU time of the whole process (all threads), in
/// seconds: fields 14 and 15 of `/proc/self/stat`, in clock ticks of
/// 1/100 s (`USER_HZ`, fixed at 100 in the kernel's user ABI).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; count from after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// KiB as MiB with one decimal.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
