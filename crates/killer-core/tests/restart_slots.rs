mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use killer_core::{request_restart_slot, Keys, Permit};
use support::RedisServer;

/// Registers a fake Sidekiq process the way Sidekiq's heartbeat does.
fn heartbeat(c: &mut redis::Connection, host: &str, pid: u32, quiet: bool, age_s: f64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let identity = format!("{host}:{pid}:abc");
    let info = format!(r#"{{"hostname":"{host}","pid":{pid},"concurrency":5}}"#);
    let () = redis::cmd("SADD")
        .arg("processes")
        .arg(&identity)
        .query(c)
        .unwrap();
    let () = redis::cmd("HSET")
        .arg(&identity)
        .arg("info")
        .arg(info)
        .arg("beat")
        .arg(now - age_s)
        .arg("quiet")
        .arg(quiet.to_string())
        .query(c)
        .unwrap();
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_processes_never_get_more_slots_than_the_limit() {
    let redis = RedisServer::start();
    let mut c = redis.conn();
    for pid in 1..=20 {
        heartbeat(&mut c, "host", pid, false, 1.0);
    }
    let keys = Keys::new("test:").unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    // 20 processes over their limit in the same instant, each on its own connection.
    let mut tasks = Vec::new();
    for pid in 1..=20u32 {
        let client = client.clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            request_restart_slot(&mut con, &keys, ("host", pid), 1, 2, TTL)
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap() == Permit::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 2);
    let held: u64 = redis::cmd("ZCARD")
        .arg("test:v1:restart_slots")
        .query(&mut c)
        .unwrap();
    assert_eq!(held, 2);
}

#[tokio::test]
async fn the_last_live_processes_are_never_allowed_to_go() {
    let redis = RedisServer::start();
    let mut c = redis.conn();
    let keys = Keys::new("test:").unwrap();
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    heartbeat(&mut c, "host", 1, false, 1.0); // me
    heartbeat(&mut c, "host", 2, true, 1.0); // quiet: not counted
    heartbeat(&mut c, "host", 3, false, 120.0); // stale heartbeat: not counted
    heartbeat(&mut c, "other", 1, false, 1.0); // same pid, other host: counted
    let permit = request_restart_slot(&mut con, &keys, ("host", 1), 2, 5, TTL)
        .await
        .unwrap();
    let Permit::Denied(why) = permit else {
        panic!("granted with one live other: {permit:?}")
    };
    assert!(why.contains("only 1 other live"), "{why}");
    assert_eq!(
        request_restart_slot(&mut con, &keys, ("host", 1), 1, 5, TTL)
            .await
            .unwrap(),
        Permit::Granted
    );
    // "other:1" cannot go now: its only live peer (host:1) is recycling.
    let permit = request_restart_slot(&mut con, &keys, ("other", 1), 1, 5, TTL)
        .await
        .unwrap();
    assert!(
        matches!(permit, Permit::Denied(ref w) if w.contains("only 0 other live")),
        "{permit:?}"
    );
    // Asking again while holding the slot is idempotent.
    assert_eq!(
        request_restart_slot(&mut con, &keys, ("host", 1), 1, 5, TTL)
            .await
            .unwrap(),
        Permit::Granted
    );
}

#[tokio::test]
async fn an_expired_slot_is_free_again() {
    let redis = RedisServer::start();
    let mut c = redis.conn();
    let keys = Keys::new("test:").unwrap();
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for pid in 1..=3 {
        heartbeat(&mut c, "h", pid, false, 0.0);
    }
    // Long enough for the second request to meet the first slot on a busy
    // machine; the slot is then waited out.
    let short = Duration::from_secs(2);
    assert_eq!(
        request_restart_slot(&mut con, &keys, ("h", 1), 1, 1, short)
            .await
            .unwrap(),
        Permit::Granted
    );
    let second = request_restart_slot(&mut con, &keys, ("h", 2), 1, 1, short)
        .await
        .unwrap();
    assert!(
        matches!(second, Permit::Denied(ref w) if w.contains("1 restart(s) already in progress")),
        "{second:?}"
    );
    tokio::time::sleep(short + Duration::from_millis(500)).await;
    assert_eq!(
        request_restart_slot(&mut con, &keys, ("h", 2), 1, 1, short)
            .await
            .unwrap(),
        Permit::Granted
    );
}
