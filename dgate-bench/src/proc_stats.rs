//! A process's CPU time, resident memory, threads and open files, read from
//! `/proc` (Linux).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub threads: u64,
    pub fds: u64,
}

pub fn sample(pid: u32) -> std::io::Result<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> u64 { fields.get(n).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // stat(5): utime is field 14, stime 15, num_threads 20; `fields[0]` is field 3.
    let ticks = field(11) + field(12);
    let threads = field(17);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Sample {
        at,
        cpu_seconds: ticks as f64 / ticks_per_second(),
        rss_kib,
        threads,
        fds,
    })
}

fn ticks_per_second() -> f64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// CPU seconds per second between two samples.
pub fn cpu_rate(from: &Sample, to: &Sample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (to.cpu_seconds - from.cpu_seconds) / wall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_threads_and_files() {
        let s = sample(std::process::id()).expect("read /proc/self");
        assert!(s.rss_kib > 100, "{s:?}");
        assert!(s.threads >= 1 && s.fds >= 3, "{s:?}");
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed().as_millis() < 300 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let later = sample(std::process::id()).expect("read /proc/self");
        assert!(
            later.cpu_seconds > s.cpu_seconds,
            "{x}: {s:?} then {later:?}"
        );
    }
}
