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
            "killer-core :cgroup (pread memory.current)",
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
}
