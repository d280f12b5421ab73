//! Reads this process's memory, the way the operator chose to count it.
//! On Linux each read is one `pread` on a file kept open (re-opened after
//! fork, since `/proc/self` resolves at open time) into a stack buffer: no
//! allocation, no subprocess. On macOS, `:rss` is one `task_info` call.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::cgroup::{self, Cgroup, Reading};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySource {
    /// Resident set size, `/proc/self/statm`.
    Rss,
    /// Anonymous resident memory (the Ruby heap, not shared libraries),
    /// `RssAnon` in `/proc/self/status`.
    RssAnon,
    /// Proportional set size, `/proc/self/smaps_rollup`: shared pages
    /// divided among the processes sharing them (forked workers).
    Pss,
    /// This process's memory cgroup (v1 or v2, found from
    /// `/proc/self/cgroup`), as its working set: usage minus inactive page
    /// cache.
    Cgroup,
}

impl MemorySource {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rss" => Ok(MemorySource::Rss),
            "rss_anon" => Ok(MemorySource::RssAnon),
            "pss" => Ok(MemorySource::Pss),
            "cgroup" => Ok(MemorySource::Cgroup),
            other => Err(Error::InvalidArgument(format!(
                "memory_source must be :rss, :rss_anon, :pss or :cgroup, got :{other}"
            ))),
        }
    }

    /// As Ruby spells it (`memory_source: :rss_anon`).
    pub fn name(self) -> &'static str {
        match self {
            MemorySource::Rss => "rss",
            MemorySource::RssAnon => "rss_anon",
            MemorySource::Pss => "pss",
            MemorySource::Cgroup => "cgroup",
        }
    }

    fn path(self) -> &'static str {
        match self {
            MemorySource::Rss => "/proc/self/statm",
            MemorySource::RssAnon => "/proc/self/status",
            MemorySource::Pss => "/proc/self/smaps_rollup",
            MemorySource::Cgroup => "/proc/self/cgroup",
        }
    }
}

/// What the `:cgroup` source reads, and what it read last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupStatus {
    pub cgroup: Cgroup,
    pub last: Reading,
}

pub struct MemoryReader {
    source: MemorySource,
    /// None where the source is not a file (macOS `:rss`, `:cgroup`).
    file: Option<File>,
    /// `:cgroup`: the cgroup, its open files and the last reading.
    cgroup: Option<(Cgroup, cgroup::Files, Reading)>,
    pid: u32,
    page_size: u64,
    last: Option<(Instant, u64)>,
}

impl MemoryReader {
    /// Fails with a message naming the source when this system cannot
    /// provide it (no cgroup v2, an old kernel without smaps_rollup, a
    /// source other than `:rss` on macOS), so the mistake shows at boot,
    /// not at the first job.
    pub fn new(source: MemorySource) -> Result<Self> {
        let mut cg = None;
        let file = if cfg!(target_os = "linux") && source == MemorySource::Cgroup {
            cg = Some(open_cgroup()?);
            None
        } else if cfg!(target_os = "linux") {
            Some(open(source)?)
        } else if cfg!(target_os = "macos") && source == MemorySource::Rss {
            None
        } else if cfg!(target_os = "macos") {
            return Err(Error::InvalidArgument(format!(
                "memory_source :{} reads Linux's /proc or cgroup files; on macOS use :rss",
                source.name()
            )));
        } else {
            return Err(Error::InvalidArgument(format!(
                "memory_source :{} is read on Linux (/proc, cgroup v2) and macOS (:rss only); this system is neither",
                source.name()
            )));
        };
        let mut reader = MemoryReader {
            source,
            file,
            cgroup: cg,
            pid: std::process::id(),
            page_size: page_size(),
            last: None,
        };
        reader.read()?;
        Ok(reader)
    }

    /// The last reading if it is younger than `max_age`, else a new one.
    /// Jobs start back to back in a busy process: the reading taken when
    /// the previous job ended is as good as a new one and saves a syscall
    /// (a `statm` read costs ~1.5 µs, `smaps_rollup` far more).
    pub fn read_recent(&mut self, max_age: Duration) -> Result<u64> {
        match self.last {
            Some((at, bytes)) if at.elapsed() < max_age => Ok(bytes),
            _ => self.read(),
        }
    }

    /// Bytes in use, as counted by the source.
    pub fn read(&mut self) -> Result<u64> {
        let bytes = if self.cgroup.is_some() {
            self.read_cgroup()?
        } else if self.file.is_some() {
            self.read_file()?
        } else {
            task_resident_bytes()?
        };
        self.last = Some((Instant::now(), bytes));
        Ok(bytes)
    }

    /// The cgroup this source reads, with its last reading.
    pub fn cgroup_status(&self) -> Option<CgroupStatus> {
        self.cgroup.as_ref().map(|(cgroup, _, last)| CgroupStatus {
            cgroup: cgroup.clone(),
            last: *last,
        })
    }

    fn read_cgroup(&mut self) -> Result<u64> {
        let pid = std::process::id();
        if pid != self.pid {
            // Resolved again after fork, as the files are re-opened.
            self.cgroup = Some(open_cgroup()?);
            self.pid = pid;
        }
        let Some((_, files, last)) = &mut self.cgroup else {
            return Err(Error::Runtime("the cgroup is not open".into()));
        };
        *last = files.read()?;
        Ok(last.working_set())
    }

    fn read_file(&mut self) -> Result<u64> {
        let pid = std::process::id();
        if pid != self.pid {
            self.file = Some(open(self.source)?);
            self.pid = pid;
        }
        let Some(file) = &self.file else {
            return Err(Error::Runtime(format!(
                "{} is not open",
                self.source.path()
            )));
        };
        let mut buf = [0u8; 4096];
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|e| Error::Runtime(format!("reading {}: {e}", self.source.path())))?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let parsed = match self.source {
            MemorySource::Rss => text
                .split_ascii_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
                .map(|pages| pages * self.page_size),
            MemorySource::RssAnon => kb_field(text, "RssAnon:"),
            MemorySource::Pss => kb_field(text, "Pss:"),
            MemorySource::Cgroup => None, // read_cgroup
        };
        parsed.ok_or_else(|| {
            Error::Runtime(format!(
                "cannot parse {} ({:?})",
                self.source.path(),
                &text[..text.len().min(80)]
            ))
        })
    }
}

/// Resident bytes of this task, from the Mach kernel (what Activity Monitor
/// and `ps -o rss` show).
#[cfg(target_os = "macos")]
fn task_resident_bytes() -> Result<u64> {
    let mut info = std::mem::MaybeUninit::<libc::mach_task_basic_info_data_t>::uninit();
    let mut count = libc::MACH_TASK_BASIC_INFO_COUNT;
    // SAFETY: `info` has room for MACH_TASK_BASIC_INFO_COUNT integers, the
    // count task_info may write; it is read only when the call succeeded.
    #[allow(deprecated)] // libc points at the mach2 crate; the call is stable
    let status = unsafe {
        libc::task_info(
            libc::mach_task_self(),
            libc::MACH_TASK_BASIC_INFO,
            info.as_mut_ptr().cast(),
            &mut count,
        )
    };
    if status != libc::KERN_SUCCESS {
        return Err(Error::Runtime(format!(
            "task_info(MACH_TASK_BASIC_INFO) failed with kern_return_t {status}"
        )));
    }
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { info.assume_init() }.resident_size)
}

// Unreachable: MemoryReader::new opens a file on every other system.
#[cfg(not(target_os = "macos"))]
fn task_resident_bytes() -> Result<u64> {
    Err(Error::Runtime("no memory source is open".into()))
}

/// This process's memory cgroup limit in bytes (the nearest one up the
/// hierarchy, v1 or v2), or why there is none: what was looked at.
pub fn cgroup_limit() -> std::result::Result<u64, String> {
    let cg = cgroup::resolve().map_err(|e| e.to_string())?;
    cg.limit.as_ref().map(|(bytes, _)| *bytes).ok_or_else(|| {
        format!(
            "{cg} and every cgroup above it up to the mount set no memory limit ({})",
            match cg.version {
                cgroup::Version::V1 => "memory.limit_in_bytes",
                cgroup::Version::V2 => "memory.max",
            }
        )
    })
}

fn open_cgroup() -> Result<(Cgroup, cgroup::Files, Reading)> {
    let cg = cgroup::resolve()?;
    let files = cgroup::Files::open(&cg)?;
    Ok((cg, files, Reading::default()))
}

fn open(source: MemorySource) -> Result<File> {
    File::open(source.path()).map_err(|e| {
        Error::InvalidArgument(format!(
            "memory_source :{} needs {} ({e})",
            source.name(),
            source.path()
        ))
    })
}

fn kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests share one process's memory: those that measure growth must not
    /// run while another frees what it allocated.
    static MEASURING: Mutex<()> = Mutex::new(());

    #[test]
    fn every_proc_source_reads_a_plausible_size_and_sees_growth() {
        let _alone = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
        for source in [MemorySource::Rss, MemorySource::RssAnon, MemorySource::Pss] {
            let mut r = MemoryReader::new(source).unwrap();
            let before = r.read().unwrap();
            assert!(before > 0, "{source:?}: {before}");
            let block = vec![1u8; 64 << 20];
            let after = r.read().unwrap();
            assert!(
                after >= before + (60 << 20),
                "{source:?}: {before} -> {after}"
            );
            drop(block);
        }
    }

    #[test]
    fn a_recent_reading_is_reused_only_while_fresh() {
        let _alone = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = MemoryReader::new(MemorySource::Rss).unwrap();
        let before = r.read().unwrap();
        let block = vec![1u8; 64 << 20];
        assert_eq!(r.read_recent(Duration::from_secs(60)).unwrap(), before);
        let after = r.read_recent(Duration::ZERO).unwrap();
        assert!(after >= before + (60 << 20), "{before} -> {after}");
        assert_eq!(r.read_recent(Duration::from_secs(60)).unwrap(), after);
        drop(block);
    }

    #[test]
    fn names_are_parsed_and_bad_ones_named() {
        assert_eq!(MemorySource::parse("pss").unwrap(), MemorySource::Pss);
        let e = MemorySource::parse("heap").unwrap_err().to_string();
        assert!(e.contains(":heap"), "{e}");
    }

    #[test]
    fn kb_fields_are_parsed() {
        assert_eq!(
            kb_field("Name:\tx\nRssAnon:\t  2048 kB\n", "RssAnon:"),
            Some(2 << 20)
        );
        assert_eq!(kb_field("nothing", "Pss:"), None);
    }
}
