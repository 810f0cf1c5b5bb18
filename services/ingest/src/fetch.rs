//! URL imports with an SSRF guard.
//!
//! Every hop's host is resolved here and each address checked before
//! connecting; the connection is pinned to the checked address (no second
//! DNS lookup can swap it), redirects are followed by hand (at most
//! [`MAX_REDIRECTS`]) and re-checked, the body is streamed to a file under a
//! byte limit.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;
use url::Url;

/// Redirect hops followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// Connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-download timeout.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("URL rejected: {0}")]
    Rejected(String),
    #[error("download failed: {0}")]
    Failed(String),
    #[error("download exceeds the limit of {0} bytes")]
    TooLarge(u64),
}

/// Check a URL's shape (scheme, host, no credentials) without network I/O.
pub fn check_url(raw: &str) -> Result<Url, FetchError> {
    let url = Url::parse(raw).map_err(|e| FetchError::Rejected(format!("{raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Rejected(format!(
            "scheme {:?} (only http and https)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::Rejected("credentials in URL".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::Rejected("no host".into()));
    }
    Ok(url)
}

/// Check a live pull URL's shape: http(s), rtmp(s), rtsp or srt, a host,
/// an explicit or known port, no credentials. No network I/O.
pub fn check_pull_url(raw: &str) -> Result<Url, FetchError> {
    let mut url = Url::parse(raw).map_err(|e| FetchError::Rejected(format!("{raw:?}: {e}")))?;
    let default_port = match url.scheme() {
        "http" => 80,
        "https" => 443,
        "rtmp" => 1935,
        "rtmps" => 443,
        "rtsp" => 554,
        "srt" => 0,
        other => {
            return Err(FetchError::Rejected(format!(
                "scheme {other:?} (http, https, rtmp, rtmps, rtsp or srt)"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::Rejected("credentials in URL".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::Rejected("no host".into()));
    }
    if url.port().is_none() {
        if default_port == 0 {
            return Err(FetchError::Rejected("srt URLs need a port".into()));
        }
        let _ = url.set_port(Some(default_port));
    }
    Ok(url)
}

/// Whether an address is on the public internet: not loopback, private
/// (RFC 1918, RFC 4193), link-local, CGNAT (RFC 6598), unspecified,
/// multicast, broadcast, documentation or benchmarking ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// Resolve `url`'s host and pick an address the guard allows.
pub async fn resolve_checked(url: &Url, allow_private: bool) -> Result<SocketAddr, FetchError> {
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::Rejected("no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FetchError::Rejected("no port".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| FetchError::Rejected(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(FetchError::Rejected(format!("{host} has no address")));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(FetchError::Rejected(format!(
                "{host} resolves to non-public address {}",
                bad.ip()
            )));
        }
    }
    Ok(addrs[0])
}

/// Download `raw_url` into `dest`, at most `limit` bytes. Returns the size.
pub async fn download(
    raw_url: &str,
    dest: &Path,
    limit: u64,
    allow_private: bool,
) -> Result<u64, FetchError> {
    let mut url = check_url(raw_url)?;
    for _ in 0..=MAX_REDIRECTS {
        let addr = resolve_checked(&url, allow_private).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .resolve(&host, addr)
            .build()
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Failed(format!("{status} without Location")))?;
            url = check_url(
                url.join(location)
                    .map_err(|e| FetchError::Rejected(e.to_string()))?
                    .as_str(),
            )?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Failed(format!("HTTP {status}")));
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let mut body = resp.bytes_stream();
        let mut size = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?
        {
            size += chunk.len() as u64;
            if size > limit {
                return Err(FetchError::TooLarge(limit));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| FetchError::Failed(e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        return Ok(size);
    }
    Err(FetchError::Failed(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn url_shapes() {
        assert!(check_url("https://example.com/a.mp4").is_ok());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("ftp://example.com/a").is_err());
        assert!(check_url("http://user:pw@example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let url = check_url("http://127.0.0.1:9/x.mp4").unwrap();
        assert!(matches!(
            resolve_checked(&url, false).await,
            Err(FetchError::Rejected(_))
        ));
        assert!(resolve_checked(&url, true).await.is_ok());
    }
}
