//! One multiplexed async connection shared by the watcher's poller and
//! writer, re-established on demand after a failure.

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::Mutex;

use crate::error::Result;
use crate::settings::Settings;

pub(crate) struct Link {
    client: redis::Client,
    config: AsyncConnectionConfig,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Link {
    pub(crate) fn new(settings: &Settings) -> Result<Self> {
        let client = redis::Client::open(settings.redis_url.as_str())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.network_timeout))
            .set_response_timeout(Some(settings.network_timeout));
        Ok(Link {
            client,
            config,
            conn: Mutex::new(None),
        })
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) async fn get(&self) -> Result<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection after an error so the next call reconnects.
    pub(crate) async fn reset(&self) {
        *self.conn.lock().await = None;
    }
}
