//! The cost of one memory read by killer-core, per source, against reading
//! and parsing /proc/self/status the usual way (a fresh open and a full
//! read each time).
//!
//!   cargo run --release -p killer-core --example rss_read
use std::hint::black_box;
use std::time::Instant;

use killer_core::{MemoryReader, MemorySource};

const READS: u32 = 200_000;

fn ns_per(reads: u32, mut read: impl FnMut() -> u64) -> f64 {
    let t0 = Instant::now();
    for _ in 0..reads {
        black_box(read());
    }
    t0.elapsed().as_nanos() as f64 / f64::from(reads)
}

fn status_vm_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

fn main() {
    println!("| read | ns |");
    println!("|---|---:|");
    let sources = [
        (
            MemorySource::Rss,
            "killer-core :rss (pread /proc/self/statm, kept open)",
        ),
        (
            MemorySource::RssAnon,
            "killer-core :rss_anon (pread /proc/self/status)",
        ),
        (
            MemorySource::Pss,
            "killer-core :pss (pread /proc/self/smaps_rollup)",
        ),
        (
            MemorySource::Cgroup,
            "killer-core :cgroup (working set: pread usage + memory.stat, kept open)",
        ),
    ];
    for (source, label) in sources {
        match MemoryReader::new(source) {
            Ok(mut reader) => {
                let reads = if source == MemorySource::Pss {
                    READS / 10
                } else {
                    READS
                };
                let ns = ns_per(reads, || reader.read().unwrap_or(0));
                println!("| {label} | {ns:.0} |");
            }
            Err(e) => println!("| {label} | unavailable here: {e} |"),
        }
    }
    let ns = ns_per(READS / 10, status_vm_rss);
    println!("| Rust: open + read /proc/self/status + find VmRSS | {ns:.0} |");
    // The same two cgroup files, opened and read afresh each time.
    if let Some(status) = MemoryReader::new(MemorySource::Cgroup)
        .ok()
        .and_then(|r| r.cgroup_status())
    {
        let dir = status.cgroup.dir;
        let usage = dir.join(match status.cgroup.version {
            killer_core::CgroupVersion::V1 => "memory.usage_in_bytes",
            killer_core::CgroupVersion::V2 => "memory.current",
        });
        let stat = dir.join("memory.stat");
        let ns = ns_per(READS / 10, || {
            let u: u64 = std::fs::read_to_string(&usage)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let inactive: u64 = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| {
                            l.strip_prefix("total_inactive_file ")
                                .or(l.strip_prefix("inactive_file "))
                        })
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            u.saturating_sub(inactive)
        });
        println!("| Rust: open + read the cgroup's usage and memory.stat afresh | {ns:.0} |");
    }
}
