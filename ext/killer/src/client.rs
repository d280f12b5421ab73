//! `Killer::Native::Client`: the console side (record a cancel, read a
//! status). No thread; each call is one Redis round trip with the GVL
//! released, bounded by `network_timeout`.

use std::collections::HashMap;
use std::time::Duration;

use killer_core::{Client as CoreClient, Delivery, Error as CoreError, RedisConfig};
use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby};

use crate::errors::to_ruby;
use crate::nogvl::without_gvl;
use crate::settings;

#[magnus::wrap(class = "Killer::Native::Client", free_immediately, size)]
struct Client {
    core: CoreClient,
    /// To scrub passwords from every error before Ruby sees it.
    redis: RedisConfig,
}

impl Client {
    /// From `Killer::Configuration#to_native` (one Hash; see settings.rs).
    fn new(ruby: &Ruby, options: RHash) -> Result<Self, Error> {
        let s = settings::settings(ruby, options)?;
        let redis = s.redis.clone();
        match CoreClient::new(s) {
            Ok(core) => Ok(Client { core, redis }),
            Err(e) => Err(to_ruby(ruby, redis.redact_error(e))),
        }
    }

    fn fail(&self, ruby: &Ruby, e: CoreError) -> Error {
        to_ruby(ruby, self.redis.redact_error(e))
    }

    /// `[status, refused, dropped]`: `refused` is nil once announced, or
    /// why Redis refused the PUBLISH (the poll delivers it); `dropped` the
    /// oldest requests dropped to keep the durable record under its cap.
    fn cancel(
        ruby: &Ruby,
        rb_self: &Self,
        jid: String,
        by: String,
        reason: String,
    ) -> Result<(String, Option<String>, u64), Error> {
        let done = without_gvl(ruby, || rb_self.core.cancel_and_publish(&jid, &by, &reason))?;
        let recorded = done.map_err(|e| rb_self.fail(ruby, e))?;
        let refused = rb_self.refused(recorded.delivery);
        Ok((
            recorded.status.as_str().to_owned(),
            refused,
            recorded.dropped,
        ))
    }

    /// Every field of the job's status record, as Strings.
    fn status_details(
        ruby: &Ruby,
        rb_self: &Self,
        jid: String,
    ) -> Result<HashMap<String, String>, Error> {
        without_gvl(ruby, || rb_self.core.status_details(&jid))?.map_err(|e| rb_self.fail(ruby, e))
    }

    /// `[[[record_json, status_hash], ...], [report_json_or_nil, ...],
    /// [recycle_json, ...]]` for the Web tab; `processes` is
    /// `[[hostname, pid], ...]`.
    #[allow(clippy::type_complexity)]
    fn overview(
        ruby: &Ruby,
        rb_self: &Self,
        processes: Vec<(String, u32)>,
        limit: usize,
    ) -> Result<
        (
            Vec<(String, HashMap<String, String>)>,
            Vec<Option<String>>,
            Vec<String>,
        ),
        Error,
    > {
        let view = without_gvl(ruby, || rb_self.core.overview(&processes, limit))?
            .map_err(|e| rb_self.fail(ruby, e))?;
        Ok((view.cancels, view.reports, view.recycles))
    }

    fn refused(&self, delivery: Delivery) -> Option<String> {
        match delivery {
            Delivery::Published => None,
            Delivery::ByPoll(why) => Some(self.redis.redact(&why)),
        }
    }

    /// `[until_ms, refused]` (see #cancel for `refused`).
    fn cancel_class(
        ruby: &Ruby,
        rb_self: &Self,
        class: String,
        seconds: f64,
        by: String,
        reason: String,
    ) -> Result<(u64, Option<String>), Error> {
        let duration = Duration::try_from_secs_f64(seconds).map_err(|_| {
            Error::new(
                ruby.exception_arg_error(),
                format!("for must be a number of seconds, got {seconds}"),
            )
        })?;
        let done = without_gvl(ruby, || {
            rb_self.core.cancel_class(&class, duration, &by, &reason)
        })?;
        let (until, delivery) = done.map_err(|e| rb_self.fail(ruby, e))?;
        Ok((until, rb_self.refused(delivery)))
    }

    /// `[was_off, refused]`.
    fn resume_class(
        ruby: &Ruby,
        rb_self: &Self,
        class: String,
        by: String,
    ) -> Result<(bool, Option<String>), Error> {
        let done = without_gvl(ruby, || rb_self.core.resume_class(&class, &by))?;
        let (was, delivery) = done.map_err(|e| rb_self.fail(ruby, e))?;
        Ok((was, rb_self.refused(delivery)))
    }

    /// `[[class, until_ms, at_ms, by, reason], ...]`, soonest end first.
    #[allow(clippy::type_complexity)]
    fn switches(
        ruby: &Ruby,
        rb_self: &Self,
    ) -> Result<Vec<(String, u64, u64, String, String)>, Error> {
        let got = without_gvl(ruby, || rb_self.core.switches())?;
        Ok(got
            .map_err(|e| rb_self.fail(ruby, e))?
            .into_iter()
            .map(|(class, s)| (class, s.until_ms, s.at_ms, s.by, s.reason))
            .collect())
    }

    fn status(ruby: &Ruby, rb_self: &Self, jid: String) -> Result<Option<String>, Error> {
        let got = without_gvl(ruby, || rb_self.core.status(&jid))?;
        got.map(|s| s.map(|s| s.as_str().to_owned()))
            .map_err(|e| rb_self.fail(ruby, e))
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Client", ruby.class_object())?;
    class.define_singleton_method("new", function!(Client::new, 1))?;
    class.define_method("cancel", method!(Client::cancel, 3))?;
    class.define_method("status_details", method!(Client::status_details, 1))?;
    class.define_method("status", method!(Client::status, 1))?;
    class.define_method("overview", method!(Client::overview, 2))?;
    class.define_method("cancel_class", method!(Client::cancel_class, 4))?;
    class.define_method("resume_class", method!(Client::resume_class, 2))?;
    class.define_method("switches", method!(Client::switches, 0))?;
    Ok(())
}
