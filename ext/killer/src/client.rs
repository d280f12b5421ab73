//! `Killer::Native::Client`: the console side (record a cancel, read a
//! status). No thread; each call is one Redis round trip with the GVL
//! released, bounded by `network_timeout`.

use std::collections::HashMap;

use killer_core::{Client as CoreClient, Settings};
use magnus::{function, method, prelude::*, Error, RModule, Ruby};

use crate::errors::{self, to_ruby};
use crate::nogvl::without_gvl;

#[magnus::wrap(class = "Killer::Native::Client", free_immediately, size)]
struct Client(CoreClient);

impl Client {
    fn new(
        ruby: &Ruby,
        redis_url: String,
        key_prefix: String,
        cancel_ttl: f64,
        network_timeout: f64,
    ) -> Result<Self, Error> {
        let mut s = Settings::new(&redis_url, &key_prefix);
        s.cancel_ttl = errors::seconds(ruby, "cancel_ttl", cancel_ttl)?;
        s.network_timeout = errors::seconds(ruby, "network_timeout", network_timeout)?;
        CoreClient::new(s).map(Client).map_err(|e| to_ruby(ruby, e))
    }

    fn cancel(
        ruby: &Ruby,
        rb_self: &Self,
        jid: String,
        by: String,
        reason: String,
    ) -> Result<String, Error> {
        let done = without_gvl(ruby, || rb_self.0.cancel_by(&jid, &by, &reason))?;
        done.map(|s| s.as_str().to_owned())
            .map_err(|e| to_ruby(ruby, e))
    }

    /// Every field of the job's status record, as Strings.
    fn status_details(
        ruby: &Ruby,
        rb_self: &Self,
        jid: String,
    ) -> Result<HashMap<String, String>, Error> {
        without_gvl(ruby, || rb_self.0.status_details(&jid))?.map_err(|e| to_ruby(ruby, e))
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
        let view = without_gvl(ruby, || rb_self.0.overview(&processes, limit))?
            .map_err(|e| to_ruby(ruby, e))?;
        Ok((view.cancels, view.reports, view.recycles))
    }

    fn status(ruby: &Ruby, rb_self: &Self, jid: String) -> Result<Option<String>, Error> {
        let got = without_gvl(ruby, || rb_self.0.status(&jid))?;
        got.map(|s| s.map(|s| s.as_str().to_owned()))
            .map_err(|e| to_ruby(ruby, e))
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Client", ruby.class_object())?;
    class.define_singleton_method("new", function!(Client::new, 4))?;
    class.define_method("cancel", method!(Client::cancel, 3))?;
    class.define_method("status_details", method!(Client::status_details, 1))?;
    class.define_method("status", method!(Client::status, 1))?;
    class.define_method("overview", method!(Client::overview, 2))?;
    Ok(())
}
