mod support;

use killer_core::{Client, Error, JobStatus};
use support::RedisServer;

#[test]
fn cancel_records_request_status_and_ttl_atomically() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    assert_eq!(client.status("j1").unwrap(), None);
    assert_eq!(client.cancel("j1").unwrap(), JobStatus::Requested);
    assert_eq!(client.status("j1").unwrap(), Some(JobStatus::Requested));

    let mut c = redis.conn();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("test:v1:cancels")
        .arg("j1")
        .query(&mut c)
        .unwrap();
    assert!(score.unwrap() > 1.6e12, "scored in ms by the server clock");
    for key in ["test:v1:cancels", "test:v1:status:j1"] {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
        assert!(ttl > 86_000_000 && ttl <= 86_400_000, "{key} ttl {ttl}");
    }
}

#[test]
fn a_second_cancel_never_rewinds_a_terminal_status() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    let mut c = redis.conn();
    let () = redis::cmd("HSET")
        .arg("test:v1:status:done")
        .arg("state")
        .arg("cancelled")
        .query(&mut c)
        .unwrap();
    assert_eq!(client.cancel("done").unwrap(), JobStatus::Cancelled);
    assert_eq!(client.status("done").unwrap(), Some(JobStatus::Cancelled));
}

#[test]
fn bad_jids_write_nothing() {
    let redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    assert!(matches!(client.cancel(""), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        client.cancel(&"x".repeat(1025)),
        Err(Error::InvalidArgument(_))
    ));
    let writes: u64 = ["eval", "evalsha", "publish", "zadd", "hset", "lpush"]
        .iter()
        .map(|c| redis.calls_of(c))
        .sum();
    assert_eq!(writes, 0, "no script, write or notification reached Redis");
    let keys: i64 = redis::cmd("DBSIZE").query(&mut redis.conn()).unwrap();
    assert_eq!(keys, 0);
}

#[test]
fn redis_down_is_a_connection_error_and_recovers_after_restart() {
    let mut redis = RedisServer::start();
    let client = Client::new(redis.settings()).unwrap();
    client.cancel("a").unwrap();
    redis.stop();
    let err = client.cancel("b").unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(
        err.to_string().contains("check that Redis runs"),
        "actionable: {err}"
    );
    redis.restart();
    assert_eq!(client.cancel("c").unwrap(), JobStatus::Requested);
}
