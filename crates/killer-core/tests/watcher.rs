mod support;

use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use killer_core::{
    Client, Event, JobStatus, Outcome, RedisConfig, Settings, Started, StopReason, Watcher,
};
use support::{next_cancel, wait_until, RedisServer};

fn start(settings: Settings) -> (Watcher, Receiver<Event>) {
    let (tx, rx) = unbounded();
    (Watcher::start(settings, tx).unwrap(), rx)
}

fn run(w: &Watcher, jid: &str) -> u64 {
    match w.job_started(support::job(jid, "TestJob", None)).unwrap() {
        Started::Run(t) => t,
        other => panic!("expected {jid} to run, got {other:?}"),
    }
}

/// The watcher has subscribed and loaded the durable record.
fn ready(redis: &RedisServer) {
    let mut c = redis.conn();
    assert!(wait_until(Duration::from_secs(30), || {
        let n: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("test:v1:cancel")
            .query(&mut c)
            .unwrap();
        n[0].1 >= 1
    }));
}

fn status(client: &Client, jid: &str, want: JobStatus) -> bool {
    wait_until(Duration::from_secs(30), || {
        client.status(jid).unwrap() == Some(want)
    })
}

#[test]
fn pubsub_delivers_a_cancel_to_the_right_job() {
    let redis = RedisServer::start();
    // A poll an hour apart: only the PUBLISH can deliver it. How fast:
    // bench/cancel_latency.rb.
    let mut settings = redis.settings();
    settings.poll_interval = Duration::from_secs(3600);
    let (w, rx) = start(settings);
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    let _other = run(&w, "other");
    let token = run(&w, "target");
    client.cancel("target").unwrap();
    let (got, jid, attempt) = next_cancel(&rx, Duration::from_secs(30)).expect("cancel event");
    assert_eq!((got, jid.as_str(), attempt), (token, "target", 1));
    w.job_finished(token, Outcome::Cancelled).unwrap();
    assert!(status(&client, "target", JobStatus::Cancelled));
    assert_eq!(w.running(), 1);
}

#[test]
fn the_poll_catches_a_lost_notification_within_poll_interval() {
    let redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    ready(&redis);
    let token = run(&w, "quiet");
    // Record the request the way the script does, but publish nothing: a
    // message lost while the subscriber was reconnecting.
    let mut c = redis.conn();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let () = redis::cmd("ZADD")
        .arg("test:v1:cancels")
        .arg(secs * 1000 + micros / 1000)
        .arg("quiet")
        .query(&mut c)
        .unwrap();
    // Nothing was published: only the poll (every 200 ms here) can find it.
    let (got, _, _) = next_cancel(&rx, Duration::from_secs(30)).expect("poll found it");
    assert_eq!(got, token);
}

#[test]
fn the_poll_catches_cancels_while_pubsub_is_cut() {
    let redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    let token = run(&w, "cut");
    let mut c = redis.conn();
    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut c)
        .unwrap();
    client.cancel("cut").unwrap();
    let (got, _, _) = next_cancel(&rx, Duration::from_secs(30)).expect("delivered anyway");
    assert_eq!(got, token);
}

#[test]
fn a_cancel_recorded_before_start_stops_the_job_from_starting() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    client.cancel("early").unwrap();
    // The watcher starts later, as in a process booted after the cancel.
    let (w, _rx) = start(redis.settings());
    assert!(wait_until(Duration::from_secs(30), || w.known_cancels() == 1));
    assert_eq!(
        w.job_started(support::job("early", "TestJob", None))
            .unwrap(),
        Started::Cancelled("early".into())
    );
    assert!(status(&client, "early", JobStatus::Cancelled));
    assert_eq!(w.running(), 0);
}

#[test]
fn an_ignored_cancel_is_raised_again_after_grace() {
    let redis = RedisServer::start();
    // Long enough that no third raise can come between the second one and
    // the job's end below, however busy the machine.
    let mut settings = redis.settings();
    settings.grace = Duration::from_secs(1);
    let (w, rx) = start(settings);
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    let token = run(&w, "stubborn");
    client.cancel("stubborn").unwrap();
    assert_eq!(next_cancel(&rx, Duration::from_secs(30)).unwrap().2, 1);
    let t0 = Instant::now();
    let (again, _, attempt) = next_cancel(&rx, Duration::from_secs(30)).unwrap();
    assert_eq!((again, attempt), (token, 2));
    assert!(t0.elapsed() >= Duration::from_millis(950), "grace is 1 s");
    w.job_finished(token, Outcome::Cancelled).unwrap();
    assert!(
        next_cancel(&rx, Duration::from_millis(700)).is_none(),
        "no raise after the end"
    );
}

#[test]
fn a_job_that_finishes_first_is_reported_finished() {
    let redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    let token = run(&w, "quick");
    client.cancel("quick").unwrap();
    next_cancel(&rx, Duration::from_secs(30)).unwrap();
    w.job_finished(token, Outcome::Finished).unwrap();
    assert!(status(&client, "quick", JobStatus::Finished));
}

#[test]
fn a_cancel_just_after_the_job_ended_is_reported_finished() {
    let redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    let token = run(&w, "ended");
    w.job_finished(token, Outcome::Finished).unwrap();
    client.cancel("ended").unwrap();
    assert!(status(&client, "ended", JobStatus::Finished));
    assert!(next_cancel(&rx, Duration::from_millis(300)).is_none());
}

#[test]
fn jobs_run_while_redis_is_down_and_cancels_apply_once_it_is_back() {
    let mut redis = RedisServer::start();
    // No periodic poll: what comes back after the restart is the
    // subscription and its reload.
    let mut settings = redis.settings();
    settings.poll_interval = Duration::from_secs(3600);
    let (w, rx) = start(settings);
    let client = Client::new(redis.settings()).unwrap();
    ready(&redis);
    redis.stop();
    // Registration needs no Redis.
    let token = run(&w, "survivor");
    // Down for a while (the outcome below does not depend on how long).
    std::thread::sleep(Duration::from_millis(600));
    redis.restart();
    client.cancel("survivor").unwrap();
    let (got, _, _) = next_cancel(&rx, Duration::from_secs(30)).expect("delivered after reconnect");
    assert_eq!(got, token);
    // And the subscription is back: with no periodic poll, only the
    // PUBLISH can deliver the next one.
    ready(&redis);
    let t2 = run(&w, "second");
    client.cancel("second").unwrap();
    assert_eq!(next_cancel(&rx, Duration::from_secs(30)).unwrap().0, t2);
}

#[test]
fn a_cancel_recorded_while_the_watcher_was_disconnected_is_loaded_on_reconnect() {
    let mut redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    ready(&redis);
    let token = run(&w, "offline");
    redis.stop();
    std::thread::sleep(Duration::from_millis(400));
    redis.restart();
    // Recorded without a subscriber listening yet (it is still backing off).
    let mut c = redis.conn();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let () = redis::cmd("ZADD")
        .arg("test:v1:cancels")
        .arg(secs * 1000 + micros / 1000 - 10_000)
        .arg("offline")
        .query(&mut c)
        .unwrap();
    assert_eq!(next_cancel(&rx, Duration::from_secs(30)).unwrap().0, token);
}

#[test]
fn redis_cost_does_not_grow_with_running_jobs() {
    let redis = RedisServer::start();
    let settings = redis.settings();
    let poll = settings.poll_interval.as_secs_f64();
    let (w, _rx) = start(settings);
    ready(&redis);
    let mut con = redis.conn();
    // Commands in about 2 s, and how many polls fit in the time it took
    // (a busy machine oversleeps: counted, not assumed).
    let mut window = |jobs: usize| {
        let tokens: Vec<u64> = (0..jobs)
            .map(|i| run(&w, &format!("busy-{jobs}-{i}")))
            .collect();
        let before = redis.commands_processed(&mut con);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(2000));
        let used = redis.commands_processed(&mut con) - before - 1;
        let polls = t0.elapsed().as_secs_f64() / poll;
        for t in tokens {
            w.job_finished(t, Outcome::Finished).unwrap();
        }
        (used as f64, polls)
    };
    // Not counted: the reload after subscribing (three commands), which
    // may come late on a busy machine.
    window(0);
    // One command per poll whatever runs; 3 more for a tick at each edge
    // and slack. A command per job would be 200 more.
    for jobs in [1, 200] {
        let (used, polls) = window(jobs);
        assert!(
            used <= polls.floor() + 3.0,
            "{jobs} jobs: {used} commands in {polls:.1} polls"
        );
    }
}

#[test]
fn shutdown_is_prompt_and_tells_the_dispatcher() {
    let redis = RedisServer::start();
    let (w, rx) = start(redis.settings());
    ready(&redis);
    let t0 = Instant::now();
    w.shutdown();
    // Bounded by design (JOIN_WAIT, 1 s); the margin is for a busy machine.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(rx.try_iter().any(|e| e == Event::Shutdown));
}

#[test]
fn bad_settings_are_refused_before_any_thread_starts() {
    let mut s = Settings::new(
        RedisConfig::from_url("redis://127.0.0.1:1/0").unwrap(),
        "test:",
    );
    s.poll_interval = Duration::ZERO;
    let (tx, _rx) = unbounded();
    let err = Watcher::start(s, tx).err().expect("refused");
    assert!(err.to_string().contains("poll_interval"), "{err}");
}

#[test]
fn a_job_past_its_deadline_gets_a_timeout_and_its_neighbour_nothing() {
    let redis = RedisServer::start();
    let mut settings = redis.settings();
    // Long enough that no third raise can come between the second one and
    // the job's end below, however busy the machine.
    settings.grace = Duration::from_secs(1);
    let (w, rx) = start(settings);
    let started = |jid: &str, timeout: Option<Duration>| match w
        .job_started(support::job(jid, "TestJob", timeout))
        .unwrap()
    {
        Started::Run(t) => t,
        other => panic!("expected {jid} to run, got {other:?}"),
    };
    let t0 = Instant::now();
    let slow = started("slow", Some(Duration::from_millis(200)));
    let quick = started("quick", Some(Duration::from_millis(100)));
    let neighbour = started("neighbour", None);
    // `quick` ends in time: its timer is aborted and never fires.
    w.job_finished(quick, Outcome::Finished).unwrap();

    let timeout = |within| loop {
        match rx.recv_timeout(within).ok()? {
            Event::Cancel {
                token,
                jid,
                attempt,
                why,
                ..
            } => return Some((token, jid, attempt, why)),
            _ => continue,
        }
    };
    let first = timeout(Duration::from_secs(30)).expect("a timeout for slow");
    let waited = t0.elapsed();
    assert_eq!(first, (slow, "slow".to_owned(), 1, StopReason::Timeout));
    assert!(
        waited >= Duration::from_millis(200),
        "never early: {waited:?}"
    );
    // Ignored: raised again after `grace`, still as a timeout.
    let again = timeout(Duration::from_secs(30)).expect("a second raise");
    assert_eq!(again, (slow, "slow".to_owned(), 2, StopReason::Timeout));
    w.job_finished(slow, Outcome::Finished).unwrap();
    assert_eq!(
        timeout(Duration::from_millis(700)),
        None,
        "nothing after the job ended"
    );
    assert_eq!(w.running(), 1, "the neighbour still runs");
    w.job_finished(neighbour, Outcome::Finished).unwrap();
}

#[test]
fn a_cancel_recorded_before_the_process_started_stops_its_first_job() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    client.cancel("pushed-back").unwrap();
    // The first job may be fetched the moment the watcher starts.
    let (w, _rx) = start(redis.settings());
    assert_eq!(
        w.job_started(support::job("pushed-back", "TestJob", None))
            .unwrap(),
        Started::Cancelled("pushed-back".into())
    );
}

#[test]
fn a_class_switch_reaches_running_and_starting_jobs_by_poll_alone_and_lifts() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    // Switched off before this watcher started: its full load must see it.
    client
        .cancel_class("EarlyJob", Duration::from_secs(60), "ops", "drill")
        .unwrap();
    // Pub/sub an hour away from mattering: a poll every 200 ms, no PUBLISH
    // reaches this watcher (it subscribes after the one sent above).
    let (w, rx) = start(redis.settings());
    ready(&redis);
    assert!(matches!(
        w.job_started(support::job("e1", "EarlyJob", None)).unwrap(),
        Started::Cancelled(id) if id == "e1"
    ));
    let sync = match w.job_started(support::job("s1", "SyncJob", None)).unwrap() {
        Started::Run(t) => t,
        other => panic!("SyncJob is not switched off yet: {other:?}"),
    };
    let bystander = run(&w, "b1");
    // Recorded the way the script does, announced nowhere: the poll finds
    // the marker in the durable record and reloads the switches.
    let mut c = redis.conn();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let now = secs * 1000 + micros / 1000;
    let () = redis::cmd("HSET")
        .arg("test:v1:switches")
        .arg("SyncJob")
        .arg(format!(
            r#"{{"until":{},"at":{now},"by":"ops","reason":""}}"#,
            now + 60_000
        ))
        .query(&mut c)
        .unwrap();
    let () = redis::cmd("ZADD")
        .arg("test:v1:cancels")
        .arg(now)
        .arg(killer_core::SWITCHES_CHANGED)
        .query(&mut c)
        .unwrap();
    let (got, jid, _) =
        next_cancel(&rx, Duration::from_secs(30)).expect("the poll applied the switch");
    assert_eq!((got, jid.as_str()), (sync, "s1"));
    w.job_finished(sync, Outcome::Cancelled).unwrap();
    assert!(status(&client, "s1", JobStatus::Cancelled));
    assert_eq!(w.running(), 1, "the bystander runs on");
    w.job_finished(bystander, Outcome::Finished).unwrap();

    let (was, _) = client.resume_class("EarlyJob", "ops").unwrap();
    assert!(was);
    assert!(wait_until(Duration::from_secs(30), || {
        match w.job_started(support::job("e2", "EarlyJob", None)).unwrap() {
            Started::Run(t) => w.job_finished(t, Outcome::Finished).is_ok(),
            Started::Cancelled(_) => false,
        }
    }));
    let live: Vec<String> = client
        .switches()
        .unwrap()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(live, vec!["SyncJob".to_owned()]);
}
