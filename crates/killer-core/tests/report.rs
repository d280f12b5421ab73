//! The Web tab's data: each process's report, the audit trail with its
//! outcomes, and the recycle history, against a real redis-server.
mod support;

use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver};
use killer_core::{
    Client, Event, JobStatus, Limits, MemorySettings, MemorySource, Outcome, Started, Watcher,
};
use support::{next_cancel, wait_until, RedisServer};

fn report(redis: &RedisServer, host: &str) -> Option<serde_json::Value> {
    let key = format!("test:v1:process:{host}:{}", std::process::id());
    let json: Option<String> = redis::cmd("GET").arg(key).query(&mut redis.conn()).ok()?;
    json.map(|j| serde_json::from_str(&j).expect("report is JSON"))
}

fn jobs(redis: &RedisServer, host: &str) -> Vec<serde_json::Value> {
    report(redis, host)
        .and_then(|r| r["jobs"].as_array().cloned())
        .unwrap_or_default()
}

/// A watcher reporting every 100 ms as `host`, and a client.
fn start(redis: &RedisServer, host: &str) -> (Watcher, Receiver<Event>, Client) {
    let mut settings = redis.settings();
    settings.hostname = host.into();
    settings.report_interval = Duration::from_millis(100);
    let (tx, rx) = unbounded();
    let w = Watcher::start(settings.clone(), tx).unwrap();
    (w, rx, Client::new(settings).unwrap())
}

#[test]
fn the_report_lists_running_jobs_with_their_cancel_state_and_expires() {
    let redis = RedisServer::start();
    let (w, rx, client) = start(&redis, "host-a");

    let Started::Run(token) = w
        .job_started(support::job("j1", "ExportJob", None))
        .unwrap()
    else {
        panic!("j1 should run")
    };
    assert!(wait_until(Duration::from_secs(30), || jobs(
        &redis, "host-a"
    )
    .len()
        == 1));
    let r = report(&redis, "host-a").unwrap();
    assert_eq!(r["hostname"], "host-a");
    assert_eq!(r["pid"], std::process::id());
    assert!(r["memory"].is_null(), "no memory watch here: {r}");
    let job = &r["jobs"][0];
    assert_eq!(
        (job["jid"].as_str(), job["class"].as_str()),
        (Some("j1"), Some("ExportJob"))
    );
    assert_eq!(job["cancel_requested"], false);
    let started = job["started_at"].as_u64().unwrap();
    assert!(started <= r["at"].as_u64().unwrap());

    client.cancel("j1").unwrap();
    next_cancel(&rx, Duration::from_secs(30)).expect("cancel delivered");
    assert!(wait_until(Duration::from_secs(30), || {
        jobs(&redis, "host-a")
            .first()
            .is_some_and(|j| j["cancel_requested"] == true)
    }));
    w.job_finished(token, Outcome::Cancelled).unwrap();
    assert!(wait_until(Duration::from_secs(30), || jobs(
        &redis, "host-a"
    )
    .is_empty()));

    // Written with a TTL: a process that stops vanishes from the tab.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("test:v1:process:host-a:{}", std::process::id()))
        .query(&mut redis.conn())
        .unwrap();
    assert!((1..=2000).contains(&pttl), "pttl {pttl}");
    w.shutdown();
    assert!(wait_until(Duration::from_secs(30), || report(
        &redis, "host-a"
    )
    .is_none()));
}

#[test]
fn the_overview_pairs_each_cancel_with_its_outcome_and_reads_reports_and_recycles() {
    let redis = RedisServer::start();
    let (w, rx, client) = start(&redis, "host-b");
    let limits = Limits {
        soft: 1, // always over: the first sample is a recycle step
        soft_percent: None,
        hard: None,
        grace: Duration::from_secs(3600),
        min_uptime: Duration::ZERO,
        drain_timeout: Duration::from_secs(60),
        kill_after: Duration::from_secs(60),
        gc_before_restart: false,
        retry_every: Duration::from_secs(60),
    };
    w.enable_memory(MemorySettings {
        limits,
        source: MemorySource::Rss,
        check_interval: Duration::from_millis(100),
        min_live_processes: 1,
        max_concurrent_restarts: 1,
        hostname: "host-b".into(),
        cannot_signal: Some("a test".into()),
    })
    .unwrap();

    let Started::Run(token) = w
        .job_started(support::job("stopped", "ReportJob", None))
        .unwrap()
    else {
        panic!("should run")
    };
    client
        .cancel_by("stopped", "alice", "stuck export")
        .unwrap();
    next_cancel(&rx, Duration::from_secs(30)).expect("cancel delivered");
    w.job_finished(token, Outcome::Cancelled).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        client.status("stopped").unwrap() == Some(JobStatus::Cancelled)
    }));
    client.cancel_by("pending", "bob", "").unwrap();

    let me = ("host-b".to_owned(), std::process::id());
    let gone = ("host-gone".to_owned(), 1);
    let mut view = client.overview(&[me.clone(), gone.clone()], 10).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        view = client.overview(&[me.clone(), gone.clone()], 10).unwrap();
        !view.recycles.is_empty()
            && view.reports[0]
                .as_deref()
                .is_some_and(|r| r.contains("\"memory\":{"))
    }));

    assert_eq!(view.cancels.len(), 2);
    let (newest, newest_status) = &view.cancels[0];
    assert!(
        newest.contains("\"pending\"") && newest.contains("\"bob\""),
        "{newest}"
    );
    assert_eq!(
        newest_status.get("state").map(String::as_str),
        Some("requested")
    );
    let (older, older_status) = &view.cancels[1];
    assert!(older.contains("stuck export"), "{older}");
    assert_eq!(
        older_status.get("state").map(String::as_str),
        Some("cancelled")
    );
    assert_eq!(
        older_status.get("class").map(String::as_str),
        Some("ReportJob")
    );
    assert!(older_status.contains_key("cancelled_at") && older_status.contains_key("requested_at"));

    assert_eq!(view.reports.len(), 2);
    assert!(
        view.reports[1].is_none(),
        "no report for a process that never ran"
    );
    let event: serde_json::Value = serde_json::from_str(&view.recycles[0]).unwrap();
    assert_eq!(
        (event["hostname"].as_str(), event["pid"].as_u64()),
        (Some("host-b"), Some(u64::from(me.1)))
    );
    assert_eq!(event["limit"], 1);
    assert!(
        !event["message"].as_str().unwrap_or_default().is_empty(),
        "{event}"
    );

    let e = client.overview(&[], 0).unwrap_err().to_string();
    assert!(e.contains("limit") && e.contains('0'), "{e}");
    assert!(client.overview(&[], 1).unwrap().reports.is_empty());
}
