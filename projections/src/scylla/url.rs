//! Parsing of `scylla://` store URLs.
//!
//! ```text
//! scylla://[user:password@]host[:port][,host[:port]...]/keyspace[?replication_factor=N&local_dc=NAME]
//! ```
//!
//! * hosts: names or IPv4 addresses, IPv6 addresses in brackets (`[::1]:9042`); the port
//!   defaults to 9042. They are contact points: the driver discovers the other nodes.
//! * keyspace: required, `[a-z_][a-z0-9_]{0,47}` (lower case, so quoting never changes
//!   its meaning).
//! * `user:password`: optional, percent-encoded (`%40` for `@`, `%3A` for `:`…), for
//!   clusters with password authentication.
//! * `replication_factor`: used only when the keyspace does not exist yet (default 1).
//! * `local_dc`: the datacenter whose nodes serve requests (and whose replicas
//!   `LOCAL_QUORUM` counts); set it on multi-datacenter clusters.

use std::fmt;
use std::net::Ipv6Addr;

use crate::store::StoreError;

/// Port used when a host does not name one.
pub const DEFAULT_PORT: u16 = 9042;
/// Replication factor of a keyspace created by [`super::ScyllaStore::open`], unless the URL
/// sets one.
pub const DEFAULT_REPLICATION_FACTOR: u32 = 1;
/// Longest keyspace name ScyllaDB accepts.
const MAX_KEYSPACE_LEN: usize = 48;
const SCHEME: &str = "scylla://";
const SHAPE: &str = "scylla://host[:port][,host[:port]...]/keyspace";

/// What a `scylla://` URL says.
#[derive(Clone, PartialEq, Eq)]
pub struct ScyllaConfig {
    /// Contact points, as `host:port` (IPv6 hosts in brackets).
    pub hosts: Vec<String>,
    pub keyspace: String,
    pub replication_factor: u32,
    pub local_dc: Option<String>,
    pub credentials: Option<Credentials>,
}

/// A user name and its password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ScyllaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("hosts", &self.hosts)
            .field("keyspace", &self.keyspace)
            .field("replication_factor", &self.replication_factor)
            .field("local_dc", &self.local_dc)
            .field("user", &self.credentials.as_ref().map(|c| c.user.as_str()))
            .finish()
    }
}

impl ScyllaConfig {
    /// Parses a `scylla://` URL (see the module docs).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid(format!("expected {SHAPE}")))?;
        if rest.contains('#') {
            return Err(invalid("a fragment (`#...`) has no meaning here".into()));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| {
            invalid(format!(
                "missing keyspace: expected {SHAPE}, for example scylla://127.0.0.1:9042/fleuve"
            ))
        })?;

        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(parse_credentials(userinfo).map_err(invalid)?), hosts),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(invalid(format!("missing host: expected {SHAPE}")));
        }
        let hosts = hosts
            .split(',')
            .map(parse_host)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let keyspace = parse_keyspace(path).map_err(invalid)?;

        let mut replication_factor = None;
        let mut local_dc = None;
        for (key, value) in query_pairs(query.unwrap_or("")).map_err(invalid)? {
            match key.as_str() {
                "replication_factor" => {
                    if replication_factor.is_some() {
                        return Err(invalid("`replication_factor` is given twice".into()));
                    }
                    let rf = value
                        .parse::<u32>()
                        .ok()
                        .filter(|rf| *rf >= 1)
                        .ok_or_else(|| {
                            invalid(format!(
                                "replication_factor `{value}` is not a positive integer"
                            ))
                        })?;
                    replication_factor = Some(rf);
                }
                "local_dc" => {
                    if local_dc.is_some() {
                        return Err(invalid("`local_dc` is given twice".into()));
                    }
                    if value.trim().is_empty() {
                        return Err(invalid("local_dc is empty".into()));
                    }
                    local_dc = Some(value);
                }
                other => {
                    return Err(invalid(format!(
                    "unknown query parameter `{other}` (supported: replication_factor, local_dc)"
                )))
                }
            }
        }

        Ok(Self {
            hosts,
            keyspace,
            replication_factor: replication_factor.unwrap_or(DEFAULT_REPLICATION_FACTOR),
            local_dc,
            credentials,
        })
    }

    /// The contact points, comma-separated, for messages.
    pub fn hosts_display(&self) -> String {
        self.hosts.join(",")
    }
}

/// The URL with its password (if any) replaced by `***`, for error messages and logs.
pub fn redact(url: &str) -> String {
    let Some(rest) = url.strip_prefix(SCHEME) else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{SCHEME}{user}:***@{hosts}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

fn parse_credentials(userinfo: &str) -> Result<Credentials, String> {
    let (user, password) = userinfo.split_once(':').ok_or_else(|| {
        "credentials must be `user:password@` (the password is missing)".to_owned()
    })?;
    let user = percent_decode(user).map_err(|e| format!("user name: {e}"))?;
    let password = percent_decode(password).map_err(|e| format!("password: {e}"))?;
    if user.is_empty() {
        return Err("the user name before `:` is empty".into());
    }
    if password.is_empty() {
        return Err("the password after `:` is empty".into());
    }
    Ok(Credentials { user, password })
}

/// One contact point, returned as `host:port`.
fn parse_host(item: &str) -> Result<String, String> {
    if item.is_empty() {
        return Err(
            "empty host in the host list (two commas in a row, or a trailing comma?)".into(),
        );
    }
    let (host, port) = if let Some(bracketed) = item.strip_prefix('[') {
        let (addr, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("host `{item}`: `[` without a closing `]`"))?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| format!("host `{item}`: `{addr}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("host `{item}`: expected `:port` after `]`"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match item.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "host `{item}`: write IPv6 addresses in brackets, for example [::1]:9042"
            ));
        }
        if host.is_empty() {
            return Err(format!("host `{item}`: the host name is empty"));
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(format!(
                "host `{item}`: `{c}` is not allowed in a host name or IPv4 address"
            ));
        }
        (host.to_owned(), port)
    };
    let port =
        match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                format!("host `{item}`: port `{p}` is not a number from 1 to 65535")
            })?,
        };
    Ok(format!("{host}:{port}"))
}

fn parse_keyspace(path: &str) -> Result<String, String> {
    const RULE: &str = "keyspace names are 1 to 48 lower-case letters, digits and underscores, \
                        not starting with a digit";
    if path.is_empty() {
        return Err(format!(
            "missing keyspace: expected {SHAPE}, for example scylla://127.0.0.1:9042/fleuve"
        ));
    }
    if path.contains('/') {
        return Err(format!(
            "`{path}`: the path must be a single keyspace name ({RULE})"
        ));
    }
    if path.len() > MAX_KEYSPACE_LEN {
        return Err(format!(
            "keyspace `{path}` is {} characters long ({RULE})",
            path.len()
        ));
    }
    let mut chars = path.chars();
    if let Some(first) = chars.next() {
        if !(first.is_ascii_lowercase() || first == '_') {
            return Err(format!(
                "keyspace `{path}` cannot start with `{first}` ({RULE})"
            ));
        }
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(format!("keyspace `{path}` contains `{c}` ({RULE})"));
    }
    Ok(path.to_owned())
}

/// Checks that every `%` of `s` starts a `%XX` escape, locating the first that does not (the
/// decoders of `percent-encoding` and `form_urlencoded` keep a malformed escape as it is,
/// which would silently change a password or a datacenter name).
fn check_escapes(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    for (at, _) in s.match_indices('%') {
        let escape = bytes.get(at + 1..at + 3);
        if !escape.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            // The text is not shown: it may be a password.
            return Err(format!(
                "`%` at byte {at} must be followed by two hexadecimal digits"
            ));
        }
    }
    Ok(())
}

/// Decodes the `%XX` escapes of a URL component (the result must be UTF-8).
fn percent_decode(s: &str) -> Result<String, String> {
    check_escapes(s)?;
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|e| format!("percent-decoded text is not UTF-8 ({e})"))
}

/// The `key=value` pairs of a query string, decoded as a form (`%XX` escapes, `+` for a
/// space); empty parts (`?&a=1&`) are skipped. Each part must have a value, well-formed
/// escapes and UTF-8 text, so a mistyped URL fails naming the parameter instead of being
/// read as something else.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("query parameter `{part}` has no value (expected key=value)"))?;
        for (what, text) in [("name", key), ("value", value)] {
            let in_part = |e: String| format!("query parameter `{key}`, its {what}: {e}");
            check_escapes(text).map_err(in_part)?;
            let decoded: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
            std::str::from_utf8(&decoded)
                .map_err(|e| in_part(format!("percent-decoded text is not UTF-8 ({e})")))?;
        }
    }
    Ok(form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match ScyllaConfig::parse(url) {
            Err(StoreError::InvalidUrl { reason, .. }) => reason,
            other => panic!("expected InvalidUrl for {url}, got {other:?}"),
        }
    }

    #[test]
    fn minimal_url_uses_defaults() {
        let c = ScyllaConfig::parse("scylla://127.0.0.1/fleuve").unwrap();
        assert_eq!(c.hosts, vec!["127.0.0.1:9042"]);
        assert_eq!(c.keyspace, "fleuve");
        assert_eq!(c.replication_factor, 1);
        assert_eq!(c.local_dc, None);
        assert_eq!(c.credentials, None);
    }

    #[test]
    fn full_url() {
        let c = ScyllaConfig::parse(
            "scylla://app:p%40ss%3Aw0rd@scylla-0.db:19042,scylla-1.db,[::1]:9043,[fe80::1]/_ks_2?replication_factor=3&local_dc=eu-west%201",
        )
        .unwrap();
        assert_eq!(
            c.hosts,
            vec![
                "scylla-0.db:19042",
                "scylla-1.db:9042",
                "[::1]:9043",
                "[fe80::1]:9042"
            ]
        );
        assert_eq!(c.keyspace, "_ks_2");
        assert_eq!(c.replication_factor, 3);
        assert_eq!(c.local_dc.as_deref(), Some("eu-west 1"));
        let creds = c.credentials.clone().unwrap();
        assert_eq!(creds.user, "app");
        assert_eq!(creds.password, "p@ss:w0rd");
        assert_eq!(
            c.hosts_display(),
            "scylla-0.db:19042,scylla-1.db:9042,[::1]:9043,[fe80::1]:9042"
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = ScyllaConfig::parse("scylla://app:hunter2@h/ks").unwrap();
        let shown = format!("{c:?} {:?}", c.credentials);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app"), "{shown}");
    }

    #[test]
    fn errors_never_show_the_password() {
        match ScyllaConfig::parse("scylla://app:hunter2@h/Bad") {
            Err(e @ StoreError::InvalidUrl { .. }) => {
                let shown = e.to_string();
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("scylla://app:***@h/Bad"), "{shown}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(redact("scylla://h/ks"), "scylla://h/ks");
        assert_eq!(
            redact("scylla://u:p@h:1/ks?local_dc=a"),
            "scylla://u:***@h:1/ks?local_dc=a"
        );
        assert_eq!(redact("scylla://u@h/ks"), "scylla://u:***@h/ks");
    }

    #[test]
    fn scheme_and_shape_errors() {
        assert!(reason("cassandra://h/ks").contains("expected scylla://"));
        assert!(reason("scylla://h").contains("missing keyspace"));
        assert!(reason("scylla://h/").contains("missing keyspace"));
        assert!(reason("scylla://h/ks#frag").contains("fragment"));
        assert!(reason("scylla:///ks").contains("missing host"));
    }

    #[test]
    fn host_errors() {
        assert!(reason("scylla://a,,b/ks").contains("empty host"));
        assert!(reason("scylla://a,/ks").contains("empty host"));
        assert!(reason("scylla://:9042/ks").contains("host name is empty"));
        assert!(reason("scylla://h:0/ks").contains("port `0`"));
        assert!(reason("scylla://h:65536/ks").contains("port `65536`"));
        assert!(reason("scylla://h:abc/ks").contains("port `abc`"));
        assert!(reason("scylla://h:/ks").contains("port ``"));
        assert!(reason("scylla://::1/ks").contains("brackets"));
        assert!(reason("scylla://[::1/ks").contains("closing `]`"));
        assert!(reason("scylla://[nope]:1/ks").contains("not an IPv6 address"));
        assert!(reason("scylla://[::1]9042/ks").contains("`:port`"));
        assert!(reason("scylla://h%20x/ks").contains("not allowed"));
    }

    #[test]
    fn credential_errors() {
        assert!(reason("scylla://user@h/ks").contains("password is missing"));
        assert!(reason("scylla://:pw@h/ks").contains("user name"));
        assert!(reason("scylla://u:@h/ks").contains("password after"));
        assert!(reason("scylla://u:%zz@h/ks").contains("hexadecimal"));
        assert!(reason("scylla://u:%ff@h/ks").contains("UTF-8"));
    }

    #[test]
    fn keyspace_errors() {
        assert!(reason("scylla://h/Fleuve").contains("cannot start with `F`"));
        assert!(reason("scylla://h/1ks").contains("cannot start with `1`"));
        assert!(reason("scylla://h/ks-1").contains("contains `-`"));
        assert!(reason("scylla://h/kS").contains("contains `S`"));
        assert!(reason("scylla://h/ks/tbl").contains("single keyspace name"));
        assert!(reason(&format!("scylla://h/{}", "k".repeat(49))).contains("49 characters"));
        assert!(ScyllaConfig::parse(&format!("scylla://h/{}", "k".repeat(48))).is_ok());
        assert!(ScyllaConfig::parse("scylla://h/_").is_ok());
    }

    #[test]
    fn query_values_are_form_decoded() {
        let c = ScyllaConfig::parse("scylla://h/ks?local_dc=eu+west%2B1%C3%A9").unwrap();
        assert_eq!(c.local_dc.as_deref(), Some("eu west+1\u{e9}"));
        let c = ScyllaConfig::parse("scylla://h/ks?replication%5Ffactor=2").unwrap();
        assert_eq!(c.replication_factor, 2);
    }

    #[test]
    fn credential_errors_locate_the_escape_without_showing_the_password() {
        let r = reason("scylla://u:secret%zz@h/ks");
        assert!(r.contains("password: `%` at byte 6"), "{r}");
        assert!(!r.contains("secret"), "{r}");
    }

    #[test]
    fn query_errors() {
        assert!(reason("scylla://h/ks?replication_factor=0").contains("not a positive integer"));
        assert!(reason("scylla://h/ks?replication_factor=-1").contains("not a positive integer"));
        assert!(reason("scylla://h/ks?replication_factor=x").contains("not a positive integer"));
        assert!(
            reason("scylla://h/ks?replication_factor=1&replication_factor=2").contains("twice")
        );
        assert!(reason("scylla://h/ks?local_dc=").contains("local_dc is empty"));
        assert!(reason("scylla://h/ks?local_dc=a&local_dc=b").contains("twice"));
        assert!(reason("scylla://h/ks?local_dc=%4").contains("hexadecimal"));
        assert!(reason("scylla://h/ks?consistency=one")
            .contains("unknown query parameter `consistency`"));
        assert!(reason("scylla://h/ks?replication_factor").contains("has no value"));
        assert!(
            reason("scylla://h/ks?local_dc=a%4").contains("`local_dc`, its value: `%` at byte 1")
        );
        assert!(reason("scylla://h/ks?local_dc=%ff").contains("`local_dc`, its value"));
        assert!(reason("scylla://h/ks?local_dc=%ff").contains("not UTF-8"));
        assert!(reason("scylla://h/ks?local%zz=a").contains("its name"));
        // Empty query parts are tolerated.
        let c = ScyllaConfig::parse("scylla://h/ks?&replication_factor=2&").unwrap();
        assert_eq!(c.replication_factor, 2);
        assert!(ScyllaConfig::parse("scylla://h/ks?").is_ok());
    }
}
