//! The one reader of Linux procfs in the project: a process's resident memory and CPU time, and the machine's CPU
//! time. The server's `/metrics` (`cxr_process_*`) and the benchmark's machine report both read through it.
//! Everything returns `None` where procfs is missing or unreadable (another OS, a sandbox).

use std::sync::OnceLock;

/// Resident set size in bytes of this process (`None`) or of `pid`: the second field of `/proc/<pid>/statm`
/// (pages) times the page size.
pub fn resident_bytes(pid: Option<u32>) -> Option<usize> {
    let statm = std::fs::read_to_string(proc_path(pid, "statm")).ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(sysconf(&PAGE_SIZE, libc::_SC_PAGESIZE)?)
}

/// CPU time this process used, in clock ticks: user + system (fields 14 and 15 of `/proc/self/stat`), plus what
/// its reaped children used (fields 16 and 17) when `with_children`.
pub fn cpu_ticks(with_children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is parenthesised and may contain spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields = after_name.split_whitespace().skip(11); // Field 3 is the first after the name.
    fields.take(if with_children { 4 } else { 2 }).map(|v| v.parse::<u64>().ok()).sum()
}

/// CPU time this process used (user + system), in seconds.
pub fn cpu_seconds() -> Option<f64> {
    Some(cpu_ticks(false)? as f64 / sysconf(&CLOCK_TICKS, libc::_SC_CLK_TCK)? as f64)
}

/// The machine's CPU time over all CPUs since boot, in clock ticks, from the `cpu` line of `/proc/stat`:
/// `(total, idle)`, where idle counts idle and iowait.
pub fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

static PAGE_SIZE: OnceLock<Option<usize>> = OnceLock::new();
static CLOCK_TICKS: OnceLock<Option<usize>> = OnceLock::new();

/// A positive `sysconf` value, queried once.
fn sysconf(cache: &OnceLock<Option<usize>>, name: libc::c_int) -> Option<usize> {
    *cache.get_or_init(|| {
        // SAFETY: sysconf(3) only reads a configuration value; it has no memory-safety preconditions.
        let value = unsafe { libc::sysconf(name) };
        usize::try_from(value).ok().filter(|&v| v > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_are_readable() {
        if !std::path::Path::new("/proc/self/statm").exists() {
            return;
        }
        let own = resident_bytes(None).expect("statm");
        assert!(own > 1_000_000, "{own}");
        let by_pid = resident_bytes(Some(std::process::id())).expect("statm by pid");
        assert!(by_pid.abs_diff(own) < 64 << 20, "{by_pid} vs {own}");
        assert!(cpu_ticks(true).unwrap() >= cpu_ticks(false).unwrap());
        assert!(cpu_seconds().unwrap() >= 0.0);
        let (total, idle) = machine_cpu_ticks().expect("/proc/stat");
        assert!(total > 0 && idle <= total);
    }
}
