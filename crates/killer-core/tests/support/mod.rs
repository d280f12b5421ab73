//! A real redis-server per test, on a free port, killed by pid on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use killer_core::{Event, JobStart, RedisConfig, Settings};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut s = RedisServer { port, child: None };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn settings(&self) -> Settings {
        let mut s = Settings::new(RedisConfig::from_url(&self.url()).unwrap(), "test:");
        s.poll_interval = Duration::from_millis(200);
        s.grace = Duration::from_millis(300);
        s.network_timeout = Duration::from_millis(500);
        s
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (bin/setup installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Commands Redis has processed so far (INFO stats), asked on `con`:
    /// one connection kept open across readings, as a new one's handshake
    /// (CLIENT SETINFO, which Redis 8 counts and 7 refuses) would count too.
    pub fn commands_processed(&self, con: &mut redis::Connection) -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    /// How many times Redis ran `command` (INFO commandstats): unlike the
    /// total, it does not depend on what a client sends when it connects
    /// (HELLO, CLIENT SETINFO), which differs between Redis versions.
    pub fn calls_of(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .unwrap();
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The next Cancel event within `within`, skipping logs.
pub fn next_cancel(rx: &Receiver<Event>, within: Duration) -> Option<(u64, String, u32)> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left).ok()? {
            Event::Cancel {
                token,
                jid,
                attempt,
                ..
            } => return Some((token, jid, attempt)),
            _ => continue,
        }
    }
}

pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A cancellable job named `jid`, as Killer::Cancellable starts one.
pub fn job(jid: &str, class: &str, timeout: Option<Duration>) -> JobStart {
    JobStart {
        ids: vec![jid.to_owned()],
        class: class.to_owned(),
        cancellable: true,
        timeout,
    }
}
