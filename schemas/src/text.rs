//! User input quoted in an error message.

/// Most characters of user input an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `s` as an error message may quote it: at most [`MAX_QUOTED_CHARS`] characters (then
/// `…`), control characters and quotes escaped, so that a hostile or binary input cannot
/// flood a log line or forge one.
///
/// ```
/// use fleuve_schemas::text::quoted;
/// assert_eq!(quoted("Playback"), "Playback");
/// assert_eq!(quoted("a\nb"), "a\\nb");
/// assert_eq!(quoted(&"x".repeat(100)).chars().count(), 65);
/// ```
pub fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTED_CHARS).collect();
    if s.chars().nth(MAX_QUOTED_CHARS).is_some() {
        out.push('…');
    }
    out.escape_debug().to_string()
}
