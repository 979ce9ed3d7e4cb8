//! Whether a mail with an agent's address in `From` was written by that
//! agent. `From` is whatever the sender typed, so concierge acts on an
//! agent's mail (relaying its text to the customer from the support address,
//! resolving, assigning) only with one of these proofs:
//!
//! - **The receiving server vouches for it**: an `Authentication-Results`
//!   header (RFC 8601) added by the server named in `email.authserv_id`
//!   says `dmarc=pass` for the `From` domain, or `dkim=pass` for a signing
//!   domain aligned with it (the same domain, or one a subdomain of the
//!   other). That server must remove headers that claim its name from
//!   incoming mail, as RFC 8601 requires (OpenDKIM, OpenDMARC, rspamd,
//!   Gmail and Microsoft 365 do); as a further guard, only the topmost
//!   verdict of each method counts, so a forged `pass` below the server's
//!   own `fail` or `none` is ignored.
//! - **The agent answered a mail concierge sent to agents**: those carry a
//!   `Reply-To` with a secret tag for their ticket, `support+TAG@domain`
//!   (an HMAC of the ticket under the instance's secret, so it cannot be
//!   guessed from one ticket for another). The mail server must deliver
//!   `+tag` addresses to the support mailbox (plus addressing: Postfix's
//!   `recipient_delimiter = +`, Gmail, Fastmail, Microsoft 365).
//! - It was found in the shared account's Sent folder (only someone logged
//!   in to the account puts mail there); [`super::intake`] handles that.
//!
//! Pure: a parsed mail, the settings and the key in; a proof or the reason
//! there is none out.

use crate::channels::email::message::Email;
use crate::channels::email::settings::EmailSettings;

/// How an agent's mail was shown to be theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The receiving server's `Authentication-Results` (`dmarc` or `dkim`).
    Server { authserv_id: String, method: &'static str },
    /// Written to the ticket's tagged reply address.
    ReplyAddress,
}

/// One `Authentication-Results` header: who added it and each method's
/// verdict with its properties (`header.d`, `header.from`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lower-cased, without a version (`dkim`, `dmarc`, `spf`, ...).
    pub method: String,
    /// Lower-cased (`pass`, `fail`, `none`, ...).
    pub result: String,
    /// `(ptype.property, value)`, property lower-cased, value as written.
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses the value of one `Authentication-Results` header; `None` when it
/// names no authserv-id. Comments are dropped, quoted values unquoted.
pub fn parse_authentication_results(value: &str) -> Option<AuthResults> {
    let text = without_comments(value);
    let mut segments = split_outside_quotes(&text, ';').into_iter();
    let authserv_id = unquote(segments.next()?.split_whitespace().next()?).to_ascii_lowercase();
    if authserv_id.is_empty() {
        return None;
    }
    let mut results = Vec::new();
    for segment in segments {
        // `dkim = pass` is as valid as `dkim=pass`.
        let tight = segment.split('=').map(str::trim).collect::<Vec<_>>().join("=");
        let mut tokens = split_outside_quotes(&tight, ' ').into_iter().filter(|t| !t.is_empty());
        let Some((method, result)) = tokens.next().and_then(|t| t.split_once('=')) else {
            continue; // "none": no results
        };
        let method = method.split('/').next().unwrap_or(method).to_ascii_lowercase();
        let props = tokens
            .filter_map(|t| t.split_once('=').map(|(k, v)| (k.to_ascii_lowercase(), unquote(v).to_string())))
            .collect();
        results.push(MethodResult { method, result: unquote(result).to_ascii_lowercase(), props });
    }
    Some(AuthResults { authserv_id, results })
}

/// Whether the receiving server named in `authserv_ids` vouches for
/// `from_domain`: the topmost `dmarc` verdict is `pass` (for that domain),
/// or the topmost `dkim` verdict is `pass` for an aligned signing domain.
pub fn server_proof(headers: &[String], authserv_ids: &[String], from_domain: &str) -> Option<Proof> {
    let ours: Vec<AuthResults> = headers
        .iter()
        .filter_map(|h| parse_authentication_results(h))
        .filter(|r| authserv_ids.iter().any(|id| id.eq_ignore_ascii_case(&r.authserv_id)))
        .collect();
    let topmost =
        |method: &str| ours.iter().find_map(|r| r.results.iter().find(|m| m.method == method).map(|m| (r, m)));
    let from_domain = from_domain.to_ascii_lowercase();
    if let Some((r, m)) = topmost("dmarc")
        && m.result == "pass"
        && m.prop("header.from").is_none_or(|d| d.eq_ignore_ascii_case(&from_domain))
    {
        return Some(Proof::Server { authserv_id: r.authserv_id.clone(), method: "dmarc" });
    }
    if let Some((r, m)) = topmost("dkim") {
        let signer = m.prop("header.d").or_else(|| m.prop("header.i").and_then(|i| i.rsplit_once('@').map(|(_, d)| d)));
        if m.result == "pass" && signer.is_some_and(|d| aligned(&d.to_ascii_lowercase(), &from_domain)) {
            return Some(Proof::Server { authserv_id: r.authserv_id.clone(), method: "dkim" });
        }
    }
    None
}

/// Relaxed alignment without a public-suffix list: the same domain, or one a
/// subdomain of the other, where the parent has at least two labels.
fn aligned(signer: &str, from: &str) -> bool {
    let under = |child: &str, parent: &str| parent.contains('.') && child.ends_with(&format!(".{parent}"));
    signer == from || under(signer, from) || under(from, signer)
}

/// The secret tag of `ticket`'s agent reply address.
pub fn reply_tag(key: &[u8], ticket: &str) -> String {
    crate::core::router::sign(key, &format!("email agent reply\n{ticket}"))[..20].to_string()
}

/// `support+TAG@domain`, the address agents' replies about `ticket` go to;
/// `None` when the support address has a `+` of its own.
pub fn reply_address(support: &str, key: &[u8], ticket: &str) -> Option<String> {
    let (local, domain) = support.split_once('@')?;
    (!local.contains('+')).then(|| format!("{local}+{}@{domain}", reply_tag(key, ticket)))
}

/// Whether `email`, which threads into `ticket`, comes from the agent in its
/// `From`; `Err` says why not, for the log.
pub fn verify(email: &Email, ticket: &str, settings: &EmailSettings, tag_key: Option<&[u8]>) -> Result<Proof, String> {
    let domain = email.from.address.rsplit_once('@').map_or("", |(_, d)| d);
    if let Some(proof) = server_proof(&email.auth_results, &settings.authserv_ids, domain) {
        return Ok(proof);
    }
    if let Some(tagged) = tag_key.and_then(|key| reply_address(&settings.address, key, ticket))
        && email.to.iter().chain(&email.cc).any(|m| m.address.eq_ignore_ascii_case(&tagged))
    {
        return Ok(Proof::ReplyAddress);
    }
    let server = match settings.authserv_ids.as_slice() {
        [] => "email.authserv_id is not set".to_string(),
        ids => format!("no aligned DKIM or DMARC pass from {}", ids.join(" or ")),
    };
    let tags = if tag_key.is_some() { "not written to the ticket's agent reply address" } else { "reply tags are off" };
    Err(format!("the agent's mail is not authenticated ({server}; {tags})"))
}

fn without_comments(text: &str) -> String {
    let (mut out, mut depth, mut quoted, mut escaped) = (String::with_capacity(text.len()), 0u32, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            c if depth == 0 => out.push(if c == '\r' || c == '\n' || c == '\t' { ' ' } else { c }),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(text[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["mx.example.test".to_string()]
    }

    #[test]
    fn parses_the_rfc_8601_examples_with_comments_versions_and_quotes() {
        let r = parse_authentication_results(
            "mx.example.test 1; (checked)\r\n\tdkim=pass (2048-bit key) header.d=example.com header.s=\"sel;1\";\r\n spf = pass smtp.mailfrom=example.com; dmarc/1=pass (p=none) header.from=example.com",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "mx.example.test");
        let methods: Vec<_> = r.results.iter().map(|m| (m.method.as_str(), m.result.as_str())).collect();
        assert_eq!(methods, [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]);
        assert_eq!(r.results[0].prop("header.s"), Some("sel;1"));
        assert_eq!(parse_authentication_results("mx.example.test; none").unwrap().results, []);
        assert_eq!(parse_authentication_results("  ; dkim=pass"), None);
    }

    #[test]
    fn dmarc_or_aligned_dkim_from_the_configured_server_is_proof() {
        let h = |v: &str| vec![v.to_string()];
        let dmarc = h("mx.example.test; dmarc=pass header.from=example.com");
        assert_eq!(
            server_proof(&dmarc, &ids(), "example.com"),
            Some(Proof::Server { authserv_id: "mx.example.test".into(), method: "dmarc" })
        );
        assert_eq!(server_proof(&dmarc, &ids(), "other.com"), None, "DMARC for another From domain");
        assert!(server_proof(&h("MX.Example.Test; dkim=pass header.d=example.com"), &ids(), "example.com").is_some());
        assert!(
            server_proof(&h("mx.example.test; dkim=pass header.d=mail.example.com"), &ids(), "example.com").is_some()
        );
        assert!(server_proof(&h("mx.example.test; dkim=pass header.i=@example.com"), &ids(), "example.com").is_some());
        for (header, why) in [
            ("mx.example.test; dkim=pass header.d=evil.test", "signed by another domain"),
            ("mx.example.test; dkim=pass header.d=com", "a public suffix is no alignment"),
            ("mx.example.test; dkim=fail header.d=example.com", "a failed signature"),
            ("mx.example.test; spf=pass smtp.mailfrom=example.com", "SPF alone does not cover From"),
            ("mx.evil.test; dmarc=pass header.from=example.com", "another server's verdict"),
        ] {
            assert_eq!(server_proof(&h(header), &ids(), "example.com"), None, "{why}");
        }
        assert_eq!(server_proof(&dmarc, &[], "example.com"), None, "no authserv_id configured: nothing trusted");
    }

    #[test]
    fn only_the_topmost_verdict_of_a_method_counts() {
        let headers = vec![
            "mx.example.test; dkim=none; dmarc=fail header.from=example.com".to_string(),
            "mx.example.test; dkim=pass header.d=example.com; dmarc=pass header.from=example.com".to_string(),
        ];
        assert_eq!(server_proof(&headers, &ids(), "example.com"), None, "a forged pass below the server's own verdict");
        let split = vec![
            "mx.example.test; dmarc=none header.from=example.com".to_string(),
            "mx.example.test; dkim=pass header.d=example.com".to_string(),
        ];
        assert!(server_proof(&split, &ids(), "example.com").is_some(), "one header per filter (OpenDMARC, OpenDKIM)");
    }

    #[test]
    fn reply_tags_are_per_ticket_and_need_the_key() {
        let a = reply_address("support@example.test", b"key one", "T1").unwrap();
        assert!(
            a.starts_with("support+") && a.ends_with("@example.test") && a.len() == "support+@example.test".len() + 20
        );
        assert_ne!(a, reply_address("support@example.test", b"key one", "T2").unwrap());
        assert_ne!(a, reply_address("support@example.test", b"key two", "T1").unwrap());
        assert_eq!(reply_address("support+x@example.test", b"key one", "T1"), None);
    }
}
