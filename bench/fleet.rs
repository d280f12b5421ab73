//! A fleet of Sidekiq processes on one Redis, as the core sees it: N
//! watchers in this process, one per simulated Sidekiq process, each with
//! its own thread, connections, channel and one running job. Measures
//! what the fleet costs Redis at rest (commands per second per process,
//! Redis's own CPU) and how long a cancel takes to become a raise event at
//! the one process that runs the job (p50/p99/max), for each N.
//!
//!   cargo run --release -p killer-core --example fleet
//!   # FLEET_SIZES=100,500,1000 FLEET_SAMPLES=200 FLEET_IDLE_SECS=10
//!
//! One machine runs Redis, every watcher and the canceller: the latencies
//! include that contention, as a busy node's would.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use killer_core::{Client, Event, JobStart, Outcome, RedisConfig, Settings, Started, Watcher};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "20000"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let url = format!("redis://127.0.0.1:{port}/0");
        let client = redis::Client::open(url.as_str()).expect("a URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Redis { child, url };
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start");
    }

    /// (commands processed, Redis CPU seconds), from INFO.
    fn counters(&self) -> (u64, f64) {
        let mut c = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("Redis");
        let info: String = redis::cmd("INFO").arg("all").query(&mut c).expect("INFO");
        let field = |name: &str| -> f64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        (
            field("total_commands_processed:") as u64,
            field("used_cpu_user:") + field("used_cpu_sys:"),
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lets this process hold a few thousand sockets (two per watcher).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid struct; failure is harmless.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

struct Process {
    watcher: Watcher,
    events: Receiver<Event>,
    jid: String,
    token: u64,
}

fn run_job(watcher: &Watcher, jid: &str) -> u64 {
    let job = JobStart {
        ids: vec![jid.to_owned()],
        class: "FleetJob".into(),
        cancellable: true,
        timeout: None,
    };
    match watcher.job_started(job) {
        Ok(Started::Run(token)) => token,
        other => panic!("{jid} did not start: {other:?}"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // A watcher in trouble (timeouts, reconnects) says so on stderr: the
    // table alone would hide it.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    let sizes = env_list("FLEET_SIZES", "100,500,1000");
    let samples = env_num("FLEET_SAMPLES", 200) as usize;
    let idle = Duration::from_secs(env_num("FLEET_IDLE_SECS", 10));
    let redis = Redis::start();
    let config = RedisConfig::from_url(&redis.url).expect("a URL");
    let client = Client::new(Settings::new(config.clone(), "fleet:")).expect("a client");
    println!("| processes | Redis commands/s per process, at rest | Redis CPU, at rest | cancel → raise event p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let mut fleet: Vec<Process> = (0..n)
            .map(|i| {
                let (tx, rx) = unbounded();
                let mut s = Settings::new(config.clone(), "fleet:");
                s.hostname = format!("fleet-{i}");
                let watcher = Watcher::start(s, tx).expect("a watcher");
                let jid = format!("job-{n}-{i}-0");
                let token = run_job(&watcher, &jid);
                Process {
                    watcher,
                    events: rx,
                    jid,
                    token,
                }
            })
            .collect();
        // Let every watcher reach its steady state (subscribed, one report).
        std::thread::sleep(Duration::from_secs(6));
        let (c0, cpu0) = redis.counters();
        let t0 = Instant::now();
        std::thread::sleep(idle);
        let (c1, cpu1) = redis.counters();
        let secs = t0.elapsed().as_secs_f64();
        // The two INFO calls are ours, not the fleet's.
        let per_process = (c1 - c0).saturating_sub(2) as f64 / secs / n as f64;
        let redis_cpu = (cpu1 - cpu0) / secs * 100.0;

        let mut latencies = Vec::with_capacity(samples);
        for k in 0..samples {
            let i = (k * 7919 + 13) % n;
            let p = &mut fleet[i];
            let t = Instant::now();
            client.cancel(&p.jid).expect("a cancel");
            loop {
                match p.events.recv_timeout(Duration::from_secs(10)) {
                    Ok(Event::Cancel { token, .. }) if token == p.token => break,
                    Ok(_) => continue,
                    Err(_) => panic!("no raise event for {} within 10 s", p.jid),
                }
            }
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            p.watcher
                .job_finished(p.token, Outcome::Cancelled)
                .expect("finished");
            p.jid = format!("job-{n}-{i}-{}", k + 1);
            p.token = run_job(&p.watcher, &p.jid);
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {n} | {per_process:.2} | {redis_cpu:.1}% | {:.1} | {:.1} | {:.1} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0)
        );
        for p in &fleet {
            p.watcher.shutdown();
        }
        drop(fleet);
    }
    println!();
    println!(
        "{samples} cancels per row, each to one job of one process; {} s at rest; poll_interval 1 s, report_interval 5 s; {} CPUs",
        idle.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
