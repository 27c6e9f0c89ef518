//! The Ollama server's address from a host setting, resolved as the ollama Python SDK's
//! `_parse_host` does (`OLLAMA_HOST` or the `host` field): a scheme is optional (`http` by
//! default), the port defaults to 11434 without a scheme and to 80/443 with `http`/`https`,
//! an empty host is `127.0.0.1`, IPv6 addresses get their brackets, and a path is kept
//! without its slashes at either end.

use crate::http::ApiError;

/// The port of an Ollama server when the setting names none (and no scheme).
pub const DEFAULT_PORT: u16 = 11434;

/// The address of a local Ollama server: `http://127.0.0.1:11434`.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Resolves `setting` (empty: the default host) to `scheme://host:port[/path]`.
pub fn parse_host(setting: &str) -> Result<String, ApiError> {
    let invalid = |reason: String| {
        ApiError::InvalidRequest(format!(
            "invalid Ollama host {setting:?} (`host` or `OLLAMA_HOST`): {reason}; expected \
             e.g. \"http://127.0.0.1:11434\" or \"127.0.0.1:11434\""
        ))
    };
    let (scheme, rest, mut port) = match setting.split_once("://") {
        Some((scheme, rest)) if !rest.is_empty() => {
            let port = match scheme {
                "http" => 80,
                "https" => 443,
                _ => DEFAULT_PORT,
            };
            (scheme, rest, port)
        }
        _ => ("http", setting, DEFAULT_PORT),
    };
    // As `urllib.parse.urlsplit`: the authority ends at the first `/`, `?` or `#`; the path
    // at the first `?` or `#`.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let path = after.split(['?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port_text) = if let Some(bracketed) = host_and_port.strip_prefix('[') {
        let Some((host, after_bracket)) = bracketed.split_once(']') else {
            return Err(invalid("an IPv6 address without its closing `]`".into()));
        };
        let port_text = after_bracket.split_once(':').map_or("", |(_, p)| p);
        (host, port_text)
    } else if host_and_port.contains(']') {
        return Err(invalid("an IPv6 address without its opening `[`".into()));
    } else {
        host_and_port.split_once(':').unwrap_or((host_and_port, ""))
    };
    if !port_text.is_empty() {
        if !port_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("the port {port_text:?} is not a number")));
        }
        let value: u32 = port_text
            .parse()
            .map_err(|_| invalid(format!("the port {port_text} is out of range 0-65535")))?;
        let value = u16::try_from(value)
            .map_err(|_| invalid(format!("the port {value} is out of range 0-65535")))?;
        // Port 0 counts as none, as in the SDK (`split.port or port`).
        if value != 0 {
            port = value;
        }
    }
    let host = host.to_lowercase();
    let host = if host.is_empty() {
        "127.0.0.1".to_owned()
    } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host
    };
    let path = path.trim_matches('/');
    if path.is_empty() {
        Ok(format!("{scheme}://{host}:{port}"))
    } else {
        Ok(format!("{scheme}://{host}:{port}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of the ollama SDK's `_parse_host` docstring (ollama 0.6.3).
    #[test]
    fn resolves_like_the_ollama_sdk() {
        let cases = [
            ("", "http://127.0.0.1:11434"),
            ("1.2.3.4", "http://1.2.3.4:11434"),
            (":56789", "http://127.0.0.1:56789"),
            ("1.2.3.4:56789", "http://1.2.3.4:56789"),
            ("http://1.2.3.4", "http://1.2.3.4:80"),
            ("https://1.2.3.4", "https://1.2.3.4:443"),
            ("https://1.2.3.4:56789", "https://1.2.3.4:56789"),
            ("example.com", "http://example.com:11434"),
            ("example.com:56789", "http://example.com:56789"),
            ("http://example.com", "http://example.com:80"),
            ("https://example.com", "https://example.com:443"),
            ("https://example.com:56789", "https://example.com:56789"),
            ("example.com/", "http://example.com:11434"),
            ("example.com:56789/", "http://example.com:56789"),
            ("example.com/path", "http://example.com:11434/path"),
            ("example.com:56789/path", "http://example.com:56789/path"),
            (
                "https://example.com:56789/path",
                "https://example.com:56789/path",
            ),
            ("example.com:56789/path/", "http://example.com:56789/path"),
            (
                "[0001:002:003:0004::1]",
                "http://[0001:002:003:0004::1]:11434",
            ),
            (
                "[0001:002:003:0004::1]:56789",
                "http://[0001:002:003:0004::1]:56789",
            ),
            (
                "http://[0001:002:003:0004::1]",
                "http://[0001:002:003:0004::1]:80",
            ),
            (
                "https://[0001:002:003:0004::1]",
                "https://[0001:002:003:0004::1]:443",
            ),
            (
                "https://[0001:002:003:0004::1]:56789",
                "https://[0001:002:003:0004::1]:56789",
            ),
            (
                "[0001:002:003:0004::1]/",
                "http://[0001:002:003:0004::1]:11434",
            ),
            (
                "[0001:002:003:0004::1]:56789/",
                "http://[0001:002:003:0004::1]:56789",
            ),
            (
                "[0001:002:003:0004::1]/path",
                "http://[0001:002:003:0004::1]:11434/path",
            ),
            (
                "[0001:002:003:0004::1]:56789/path",
                "http://[0001:002:003:0004::1]:56789/path",
            ),
            (
                "https://[0001:002:003:0004::1]:56789/path",
                "https://[0001:002:003:0004::1]:56789/path",
            ),
            (
                "[0001:002:003:0004::1]:56789/path/",
                "http://[0001:002:003:0004::1]:56789/path",
            ),
        ];
        for (setting, expected) in cases {
            assert_eq!(parse_host(setting).as_deref(), Ok(expected), "{setting:?}");
        }
    }

    #[test]
    fn more_cases_as_urlsplit_reads_them() {
        assert_eq!(
            parse_host("Example.COM:8080/a/b?q=1#f").as_deref(),
            Ok("http://example.com:8080/a/b")
        );
        assert_eq!(
            parse_host("user:pw@host:1234").as_deref(),
            Ok("http://host:1234")
        );
        assert_eq!(parse_host("host:0").as_deref(), Ok("http://host:11434"));
        assert_eq!(parse_host("http://").as_deref(), Ok("http://http:11434"));
    }

    #[test]
    fn bad_ports_and_brackets_are_clear_errors() {
        for bad in ["host:abc", "host:70000", "[::1", "::1]"] {
            let error = parse_host(bad).expect_err(bad);
            assert!(matches!(error, ApiError::InvalidRequest(_)), "{bad}");
            assert!(error.to_string().contains("OLLAMA_HOST"), "{error}");
        }
    }
}
