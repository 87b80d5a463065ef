//! Idempotency keys, as the IETF HTTP API working group's `Idempotency-Key` header has
//! them: a client names a change with a key of its own, and sending the same request with
//! the same key again returns the first one's result instead of making a second change.

use std::fmt;

use super::{InputError, UserId};

/// A client's key: 1 to 255 printable ASCII characters (a UUID, typically).
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted, in characters.
    pub const MAX_CHARS: usize = 255;

    /// Parses a key as a header or a request's `extensions` carries it; the header's
    /// structured-field form (`"…"`) is accepted too.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        let raw = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        if raw.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err(InputError::new(format!(
                "an idempotency key must be 1 to {} characters long",
                Self::MAX_CHARS
            )));
        }
        if !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(InputError::new(
                "an idempotency key may hold printable ASCII characters only",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as the client sent it, without the header's quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// A change that a request makes under a key: whose key, which change of the request
/// (a request may hold several mutations), and what the request asked, so that the key
/// sent again with another request is told apart from a retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The user who sent the key: the same key from two users names two changes.
    pub user: UserId,
    /// The client's key.
    pub key: IdempotencyKey,
    /// The mutation field's response key (its alias, or its name).
    pub change: String,
    /// A digest of the operation and its variables.
    pub fingerprint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_and_bounded() {
        assert_eq!(
            IdempotencyKey::parse("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").map(|k| k.0),
            Ok("8e03978e-40d5-43e8-bc93-6894a57f9324".to_owned())
        );
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("\"\"").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}").is_err());
        assert!(IdempotencyKey::parse("a\nb").is_err());
    }
}
