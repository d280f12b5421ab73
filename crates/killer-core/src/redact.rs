//! Secrets out of every text Killer produces: a password as typed,
//! percent-encoded or percent-decoded becomes `REDACTED`, as Sidekiq
//! writes it.

/// What replaces a secret in every text Killer produces.
pub const REDACTED: &str = "REDACTED";

/// A URL with its password replaced, for messages about a URL that did
/// not parse (so nothing else about it is known).
pub fn redact_url(url: &str) -> String {
    redact_text(url, &url_secrets(url))
}

/// The password part of `scheme://user:password@host`, as written.
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let password = match userinfo.split_once(':') {
        Some((_, p)) => p,
        None => userinfo, // redis://password@host: Redis's own shorthand
    };
    if password.is_empty() {
        Vec::new()
    } else {
        vec![password.to_owned()]
    }
}

/// `text` with each secret (as typed, percent-decoded and percent-encoded)
/// replaced by `REDACTED`.
pub(crate) fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for form in [
            secret.clone(),
            percent_encode(secret),
            percent_decode(secret),
        ] {
            if !form.is_empty() && out.contains(&form) {
                out = out.replace(&form, REDACTED);
            }
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
