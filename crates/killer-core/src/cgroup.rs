//! This process's own memory cgroup, found the way the kernel describes it
//! (`/proc/self/cgroup` and `/proc/self/mountinfo`) in every layout
//! deployments have: cgroup v2 (unified; a container's namespace, or a
//! systemd service such as `system.slice/sidekiq.service`), v1 (the memory
//! controller's own mount, as on Amazon Linux 2 / ECS and older Kubernetes
//! nodes) and hybrid (v1 memory beside a v2 `unified` mount).
//!
//! Usage is the **working set**, as the kubelet and cAdvisor judge a
//! container (and the OOM killer acts): usage minus the inactive page
//! cache, which the kernel reclaims first. The limit is the nearest one
//! set on the way up the hierarchy (systemd often limits at the slice).
//! [`locate`] is a pure function of those two texts and the files under
//! the mount, so every layout is tested on a fake tree.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// v1 reports "no limit" as the largest page-aligned i64; anything this big
/// is no limit.
const V1_NO_LIMIT: u64 = 1 << 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where this process's memory is accounted, and its nearest limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub version: Version,
    /// The process's own cgroup directory.
    pub dir: PathBuf,
    /// The nearest limit on the way up (bytes), and the directory that
    /// sets it; None when no cgroup up to the mount's root has one.
    pub limit: Option<(u64, PathBuf)>,
}

/// One reading: what the cgroup uses, and the part the kernel would
/// reclaim first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    pub usage: u64,
    pub inactive_file: u64,
}

impl Reading {
    /// Usage minus inactive page cache: what counts against the limit.
    pub fn working_set(&self) -> u64 {
        self.usage.saturating_sub(self.inactive_file)
    }
}

impl Version {
    fn usage_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        }
    }

    fn limit_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        }
    }

    /// The `memory.stat` key of the inactive page cache (v1's `total_`
    /// one counts the children too, as usage does).
    fn inactive_key(self) -> &'static str {
        match self {
            Version::V1 => "total_inactive_file",
            Version::V2 => "inactive_file",
        }
    }
}

impl fmt::Display for Cgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        };
        write!(f, "cgroup {v} {}", self.dir.display())
    }
}

/// This process's memory cgroup, from `/proc/self`.
pub fn resolve() -> Result<Cgroup> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::InvalidArgument(format!("memory_source :cgroup needs {p} ({e})")))
    };
    locate(&read("/proc/self/cgroup")?, &read("/proc/self/mountinfo")?)
}

/// The memory cgroup named by `proc_cgroup` (the text of
/// `/proc/self/cgroup`) under the mounts of `mountinfo` (the text of
/// `/proc/self/mountinfo`), with its nearest limit read from the files.
/// The v1 memory controller wins where both are mounted (hybrid: memory is
/// accounted there).
pub fn locate(proc_cgroup: &str, mountinfo: &str) -> Result<Cgroup> {
    let mounts = parse_mounts(mountinfo);
    let mut looked = Vec::new();
    for version in [Version::V1, Version::V2] {
        let Some(path) = cgroup_path(proc_cgroup, version) else {
            continue;
        };
        let Some(mount) = mounts.iter().find(|m| m.serves(version)) else {
            looked.push(format!(
                "{} {path} (not mounted)",
                if version == Version::V1 {
                    "v1 memory"
                } else {
                    "v2"
                }
            ));
            continue;
        };
        let dir = mount.dir_of(path);
        // A cgroup namespace can name a path the mount does not show
        // ("/" or "/.."): the mount's root is then the process's cgroup.
        let dir = if dir.join(version.usage_file()).is_file() {
            dir
        } else {
            mount.point.clone()
        };
        if !dir.join(version.usage_file()).is_file() {
            looked.push(format!("{} (no {})", dir.display(), version.usage_file()));
            continue;
        }
        let limit = nearest_limit(&dir, &mount.point, version);
        return Ok(Cgroup {
            version,
            dir,
            limit,
        });
    }
    Err(Error::InvalidArgument(if looked.is_empty() {
        "memory_source :cgroup: /proc/self/cgroup names no memory cgroup (no v1 memory controller, no v2 line)".into()
    } else {
        format!(
            "memory_source :cgroup: no readable memory cgroup for this process (looked at {})",
            looked.join("; ")
        )
    }))
}

/// The first limit from `dir` up to `root` (inclusive).
fn nearest_limit(dir: &Path, root: &Path, version: Version) -> Option<(u64, PathBuf)> {
    let mut at = Some(dir);
    while let Some(d) = at {
        let text = std::fs::read_to_string(d.join(version.limit_file())).unwrap_or_default();
        let limit = match text.trim() {
            "max" | "" => None,
            n => n.parse::<u64>().ok().filter(|&b| b < V1_NO_LIMIT),
        };
        if let Some(bytes) = limit {
            return Some((bytes, d.to_path_buf()));
        }
        if d == root {
            break;
        }
        at = d.parent().filter(|p| p.starts_with(root));
    }
    None
}

/// The path `/proc/self/cgroup` gives for the hierarchy of `version`.
fn cgroup_path(proc_cgroup: &str, version: Version) -> Option<&str> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let ours = match version {
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
            Version::V2 => id == "0" && controllers.is_empty(),
        };
        ours.then_some(path)
    })
}

struct Mount {
    /// The cgroup path the mount shows at its mount point.
    root: String,
    point: PathBuf,
    fstype: String,
    options: String,
}

impl Mount {
    fn serves(&self, version: Version) -> bool {
        match version {
            Version::V1 => {
                self.fstype == "cgroup" && self.options.split(',').any(|o| o == "memory")
            }
            Version::V2 => self.fstype == "cgroup2",
        }
    }

    fn dir_of(&self, path: &str) -> PathBuf {
        let rel = if self.root != "/" {
            path.strip_prefix(self.root.as_str()).unwrap_or(path)
        } else {
            path
        };
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rel)
        }
    }
}

/// mountinfo(5): `id parent major:minor root point options [tags] - fstype
/// source super-options`; spaces in paths are octal-escaped.
fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?.to_owned();
            let _source = right.next()?;
            let options = right.next().unwrap_or("").to_owned();
            Some(Mount {
                root: unescape(left.get(3)?),
                point: PathBuf::from(unescape(left.get(4)?)),
                fstype,
                options,
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cgroup's usage and stat files, kept open: a reading is two preads.
pub struct Files {
    version: Version,
    usage: File,
    stat: File,
}

impl Files {
    pub fn open(cgroup: &Cgroup) -> Result<Self> {
        let open = |name: &str| {
            let path = cgroup.dir.join(name);
            File::open(&path).map_err(|e| {
                Error::InvalidArgument(format!(
                    "memory_source :cgroup needs {} ({e})",
                    path.display()
                ))
            })
        };
        Ok(Files {
            version: cgroup.version,
            usage: open(cgroup.version.usage_file())?,
            stat: open("memory.stat")?,
        })
    }

    pub fn read(&self) -> Result<Reading> {
        let mut buf = [0u8; 8192];
        let n = self
            .usage
            .read_at(&mut buf, 0)
            .map_err(|e| Error::Runtime(format!("reading the cgroup's usage: {e}")))?;
        let usage = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::Runtime("cannot parse the cgroup's usage".into()))?;
        let n = self
            .stat
            .read_at(&mut buf, 0)
            .map_err(|e| Error::Runtime(format!("reading the cgroup's memory.stat: {e}")))?;
        let key = self.version.inactive_key();
        let inactive_file = std::str::from_utf8(&buf[..n])
            .unwrap_or("")
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
            .unwrap_or(0);
        Ok(Reading {
            usage,
            inactive_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup tree under a temp dir: `files` are (path under the
    /// root, content).
    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "killer-cgroup-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        root
    }

    fn mountinfo(root: &Path, lines: &[(&str, &str, &str, &str)]) -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, (cg_root, point, fstype, opts))| {
                format!(
                    "{} 1 0:{} {cg_root} {}/{point} rw,relatime - {fstype} {fstype} {opts}\n",
                    30 + i,
                    40 + i,
                    root.display()
                )
            })
            .collect()
    }

    #[test]
    fn v2_systemd_service_limited_at_its_slice() {
        let root = tree(&[
            ("cg/memory.max", "max\n"),
            ("cg/system.slice/memory.max", "4294967296\n"),
            ("cg/system.slice/sidekiq.service/memory.max", "max\n"),
            ("cg/system.slice/sidekiq.service/memory.current", "1000\n"),
            (
                "cg/system.slice/sidekiq.service/memory.stat",
                "anon 600\nfile 400\ninactive_file 300\n",
            ),
        ]);
        let info = mountinfo(&root, &[("/", "cg", "cgroup2", "rw,nsdelegate")]);
        let cg = locate("0::/system.slice/sidekiq.service\n", &info).unwrap();
        assert_eq!(cg.version, Version::V2);
        assert_eq!(cg.dir, root.join("cg/system.slice/sidekiq.service"));
        assert_eq!(cg.limit, Some((4294967296, root.join("cg/system.slice"))));
        let reading = Files::open(&cg).unwrap().read().unwrap();
        assert_eq!((reading.usage, reading.working_set()), (1000, 700));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v2_container_namespace_is_the_mount_root() {
        let root = tree(&[
            ("cg/memory.max", "536870912\n"),
            ("cg/memory.current", "10\n"),
            ("cg/memory.stat", "inactive_file 0\n"),
        ]);
        let info = mountinfo(&root, &[("/", "cg", "cgroup2", "rw")]);
        let cg = locate("0::/\n", &info).unwrap();
        assert_eq!(cg.dir, root.join("cg"));
        assert_eq!(cg.limit, Some((536870912, root.join("cg"))));
        // A namespace naming a path the mount does not show ("/.."):
        // the mount's root serves.
        assert_eq!(locate("0::/..\n", &info).unwrap().dir, root.join("cg"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_and_hybrid_use_the_memory_controller_and_read_its_sentinel_as_no_limit() {
        let root = tree(&[
            ("cg/memory/memory.limit_in_bytes", "9223372036854771712\n"),
            (
                "cg/memory/docker/abc/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("cg/memory/docker/abc/memory.usage_in_bytes", "5000\n"),
            (
                "cg/memory/docker/abc/memory.stat",
                "inactive_file 9\ntotal_inactive_file 2000\n",
            ),
            ("cg/unified/memory.current", "1\n"),
        ]);
        let info = mountinfo(
            &root,
            &[
                ("/", "cg/cpu", "cgroup", "rw,cpu"),
                ("/", "cg/memory", "cgroup", "rw,memory"),
                ("/", "cg/unified", "cgroup2", "rw"),
            ],
        );
        let proc = "4:memory:/docker/abc\n3:cpu:/docker/abc\n0::/docker/abc\n";
        let cg = locate(proc, &info).unwrap();
        assert_eq!(cg.version, Version::V1);
        assert_eq!(cg.dir, root.join("cg/memory/docker/abc"));
        assert_eq!(cg.limit, None);
        let reading = Files::open(&cg).unwrap().read().unwrap();
        assert_eq!(
            reading.working_set(),
            3000,
            "total_inactive_file, not inactive_file"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_mount_showing_a_sub_tree_and_a_nested_limit() {
        let root = tree(&[
            ("m/memory.limit_in_bytes", "9223372036854771712\n"),
            ("m/job/memory.limit_in_bytes", "1073741824\n"),
            ("m/job/memory.usage_in_bytes", "1\n"),
            ("m/job/memory.stat", "total_inactive_file 0\n"),
        ]);
        // The mount shows /kubepods/pod1 at its point (no cgroup namespace).
        let info = mountinfo(&root, &[("/kubepods/pod1", "m", "cgroup", "rw,memory")]);
        let cg = locate("7:memory:/kubepods/pod1/job\n", &info).unwrap();
        assert_eq!(cg.dir, root.join("m/job"));
        assert_eq!(cg.limit, Some((1073741824, root.join("m/job"))));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn says_what_it_looked_at_when_nothing_is_there() {
        let e = locate("0::/x\n", "").unwrap_err().to_string();
        assert!(e.contains("v2 /x (not mounted)"), "{e}");
        let e = locate("1:cpu:/\n", "").unwrap_err().to_string();
        assert!(e.contains("no v1 memory controller, no v2 line"), "{e}");
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }
}
