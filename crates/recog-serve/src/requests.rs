//! What the server reads from a client before the engine sees anything: the token, and the
//! WebSocket's text messages. Kept apart so the fuzz target and the tests reach it.

use serde::Deserialize;

/// Compares two byte strings in time that depends only on their lengths, so a client cannot
/// find the token a byte at a time by timing the 401s.
///
/// ```
/// use recog_serve::constant_time_eq;
/// assert!(constant_time_eq(b"s3cret", b"s3cret"));
/// assert!(!constant_time_eq(b"s3cret", b"s3creT"));
/// assert!(!constant_time_eq(b"s3cret", b"s3cre"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    // Every byte position of the longer string is visited whatever the contents.
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// `%XX` and `+` decoding of a query value; `None` for a broken escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a request carries the token `want`: `Authorization: Bearer TOKEN` (the API) or a
/// `token=` query parameter (the page's address, its WebSocket and its thumbnails, which a
/// browser fetches without headers).
pub(crate) fn authorized(want: &str, authorization: Option<&str>, query: Option<&str>) -> bool {
    let want = want.as_bytes();
    if let Some(t) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
        if constant_time_eq(t.trim().as_bytes(), want) {
            return true;
        }
    }
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.strip_prefix("token="))
        .filter_map(percent_decode)
        .any(|t| constant_time_eq(t.as_bytes(), want))
}

/// A text message from the page over the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// What the page drew for the last frame: one "name distance" label per face.
    Drawn {
        /// The labels drawn.
        #[serde(default)]
        labels: Vec<String>,
    },
}

impl ClientMessage {
    /// The message, or `None` for anything else (ignored, as the page may grow messages).
    ///
    /// ```
    /// use recog_serve::ClientMessage;
    /// let m = ClientMessage::parse(r#"{"type":"drawn","labels":["Ada 0.31"]}"#);
    /// assert_eq!(m, Some(ClientMessage::Drawn { labels: vec!["Ada 0.31".into()] }));
    /// assert_eq!(ClientMessage::parse("{}"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        // The stats keep the last labels: a page cannot make them grow without bound.
        const MAX_LABELS: usize = 256;
        match serde_json::from_str::<ClientMessage>(text).ok()? {
            ClientMessage::Drawn { mut labels } => {
                labels.truncate(MAX_LABELS);
                Some(ClientMessage::Drawn { labels })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_from_the_header_or_the_query_only_when_it_matches() {
        assert!(authorized("ab c", Some("Bearer ab c"), None));
        assert!(authorized("ab c", None, Some("x=1&token=ab%20c")));
        assert!(authorized("ab c", None, Some("token=ab+c")));
        assert!(!authorized("ab c", Some("Bearer ab"), Some("token=ab")));
        assert!(!authorized("ab c", Some("Basic ab c"), None));
        assert!(!authorized("ab c", None, Some("token=ab%2")));
        assert!(!authorized("ab c", None, Some("xtoken=ab c")));
        assert!(!authorized("t", None, None));
        assert_eq!(percent_decode("%e2%82%ac"), Some("€".into()));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn constant_time_eq_agrees_with_eq() {
        for (a, b) in [
            ("", ""),
            ("a", ""),
            ("", "a"),
            ("abc", "abd"),
            ("abc", "abc"),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} {b:?}"
            );
        }
    }
}
