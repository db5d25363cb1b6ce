//! What a config error may quote of the file. A malformed config is exactly where someone pasted
//! a token by mistake (`token = "pat-na1-…` with the closing quote missing), and the TOML
//! parser's own message quotes the offending line and values. Here a parse error is rebuilt from
//! its position and message, and any line or quoted value that looks like a secret is withheld.
//!
//! Invariant: nothing this module returns contains a quoted value or a line that
//! [`looks_secret`] or [`line_looks_secret`] flags; a false alarm only costs the echo.

/// The longest config file crmsync reads: far above any real one (a few hundred syncs), far
/// below what would make parsing a denial of service.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Key names whose values are secrets (when not a variable's or a file's name).
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "private",
    "credential",
    "auth",
    "bearer",
];

/// Whether a value looks like a credential: a URL with a password, or a long opaque run of
/// letters and digits without spaces (API tokens, keys, base64).
pub fn looks_secret(value: &str) -> bool {
    if let Some((_, rest)) = value.split_once("://")
        && let Some((userinfo, _)) = rest.split_once('@')
        && userinfo.contains(':')
    {
        return true;
    }
    let opaque = value.len() >= 20
        && !value.contains(char::is_whitespace)
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+/=:".contains(c));
    let mixed =
        value.chars().any(|c| c.is_ascii_digit()) && value.chars().any(|c| c.is_ascii_alphabetic());
    opaque && mixed
}

/// Whether a config line may hold a secret: its key names one (`token`, `secret`, … but not
/// `token_env` or `secret_file`, which name where the secret is), or a value on it looks like
/// one.
pub fn line_looks_secret(line: &str) -> bool {
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim().trim_matches('"').to_ascii_lowercase();
        let names_a_place = key.ends_with("_env") || key.ends_with("_file");
        if !names_a_place && SECRET_KEYS.iter().any(|k| key.contains(k)) {
            return true;
        }
    }
    quoted(line).any(looks_secret)
        || line
            .split(|c: char| c.is_whitespace() || c == '=' || c == ',')
            .any(looks_secret)
}

/// The quoted parts of `text` (an unterminated quote runs to the end).
fn quoted(text: &str) -> impl Iterator<Item = &str> {
    text.split('"').skip(1).step_by(2)
}

/// `message` with every quoted value that looks like a secret replaced by `"…"`.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        if i % 2 == 1 && looks_secret(part) {
            out.push('…');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A TOML parse error of `text` as crmsync prints it: the line and column, the parser's message
/// (secret-looking values withheld) and the offending line, unless it may hold a secret.
pub fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let message = redact_quoted(e.message().trim_end());
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(1, |l| l.chars().count() + 1);
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let shown = if line_looks_secret(line) {
        "(the line is not shown: it may hold a secret)".to_string()
    } else {
        line.trim_end().to_string()
    };
    format!("line {line_no}, column {column}: {message}\n  {line_no} | {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_passwords_look_secret_names_and_words_do_not() {
        for s in [
            "pat-na1-11111111-2222-3333-4444-555555555555",
            "postgres://app:hunter2@db/app",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(looks_secret(s), "{s}");
        }
        for s in [
            "HUBSPOT_ACCESS_TOKEN",
            "appointmentscheduled",
            "sqlite://crmsync-state.db",
            "a sentence with spaces in it 123",
            "postgres://postgres@127.0.0.1:5432/test",
        ] {
            assert!(!looks_secret(s), "{s}");
        }
    }

    #[test]
    fn a_line_with_a_secret_key_or_value_is_withheld() {
        assert!(line_looks_secret(r#"token = "pat-na1-x"#));
        assert!(line_looks_secret(r#"secret = "s3cret""#));
        assert!(line_looks_secret(r#"url = "mysql://root:pw123456@db/app""#));
        assert!(!line_looks_secret(r#"token_env = "HUBSPOT_ACCESS_TOKEN""#));
        assert!(!line_looks_secret(r#"max_retries = "five""#));
    }

    #[test]
    fn a_parse_error_names_line_and_column_and_hides_the_token() {
        let text =
            "[crm]\nkind = \"hubspot\"\ntoken = \"pat-na1-11111111-2222-3333-4444-555555555555\n";
        let e = toml::from_str::<toml::Value>(text).expect_err("unterminated");
        let msg = parse_error(text, &e);
        assert!(msg.contains("line 3"), "{msg}");
        assert!(!msg.contains("pat-na1"), "{msg}");
        assert!(!msg.contains("5555"), "{msg}");

        let text = "[crm]\nmax_retries = = 3\n";
        let e = toml::from_str::<toml::Value>(text).expect_err("bad");
        let msg = parse_error(text, &e);
        assert!(
            msg.contains("line 2") && msg.contains("max_retries = = 3"),
            "{msg}"
        );
    }
}
