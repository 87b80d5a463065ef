//! Inputs checked before any request reaches DynamoDB ("parse, don't validate").

use std::fmt;

/// Why a client's input was refused, in words a client developer understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    message: String,
}

impl InputError {
    /// An error whose message the client is shown as it is.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A username: 3 to 32 characters, each an ASCII letter, a digit, `_` or `-`.
///
/// ASCII only, as most services have it: with any Unicode letter allowed, `аlice` (with a
/// Cyrillic `а`) or a full-width `ａｌｉｃｅ` would sit beside `alice`, looking the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// The shortest username, in characters.
    pub const MIN_CHARS: usize = 3;
    /// The longest username, in characters.
    pub const MAX_CHARS: usize = 32;

    /// Checks a username a client sent; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(InputError::new(format!(
                "username must be {} to {} characters long (got {chars})",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(InputError::new(
                "username may contain only ASCII letters (a-z, A-Z), digits, '_' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as the client spelled it (case kept).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The username as an owned string, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An email address: one `@`, a non-empty local part, a dotted domain, no spaces,
/// at most 254 characters (RFC 5321's path limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The longest address, in characters.
    pub const MAX_CHARS: usize = 254;

    /// Checks an address a client sent, without the whitespace around it.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        let invalid = || InputError::new(format!("email {raw:?} is not a valid email address"));
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InputError::new(format!(
                "email must be at most {} characters long",
                Self::MAX_CHARS
            )));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The address, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as an owned string, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Text that must not be blank after trimming and has a size limit; the limit is
/// counted in characters for titles and in bytes for bodies (what DynamoDB stores).
fn checked_text(
    field: &str,
    raw: &str,
    max: usize,
    measure: fn(&str) -> usize,
    unit: &str,
) -> Result<String, InputError> {
    if raw.trim().is_empty() {
        return Err(InputError::new(format!("{field} must not be blank")));
    }
    let size = measure(raw);
    if size > max {
        return Err(InputError::new(format!(
            "{field} is too long: {size} {unit}, at most {max}"
        )));
    }
    Ok(raw.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $measure:expr, $unit:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The most the text may hold: characters for a title, bytes for a body.
            pub const MAX: usize = $max;

            /// Checks text a client sent: not blank, and within the limit.
            pub fn parse(raw: &str) -> Result<Self, InputError> {
                checked_text($field, raw, Self::MAX, $measure, $unit).map(Self)
            }

            /// The text as the client sent it (not trimmed).
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text as an owned string, without a copy.
            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}

text_type!(
    /// A post title: 1 to 200 characters, not blank.
    Title, "title", 200, |s| s.chars().count(), "characters"
);
text_type!(
    /// A post's body: up to 64 KiB of UTF-8, not blank.
    PostContent, "content", 64 * 1024, str::len, "bytes"
);
text_type!(
    /// A comment's body: up to 8 KiB of UTF-8, not blank.
    CommentContent, "content", 8 * 1024, str::len, "bytes"
);

/// How many items a connection page holds: 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageSize(u8);

impl PageSize {
    /// The largest page a client may ask for.
    pub const MAX: i32 = 100;

    /// Checks a connection's `first` or `last` argument (named `argument`): 0 to 100.
    pub fn parse(first: i32, argument: &str) -> Result<Self, InputError> {
        u8::try_from(first)
            .ok()
            .filter(|n| i32::from(*n) <= Self::MAX)
            .map(Self)
            .ok_or_else(|| {
                InputError::new(format!(
                    "`{argument}` must be between 0 and {} (got {first})",
                    Self::MAX
                ))
            })
    }

    /// The number of items asked for; a page may hold fewer.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a_b-c9").is_ok());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse(&"x".repeat(33)).is_err());
        assert!(Username::parse(&"x".repeat(32)).is_ok());
        // Look-alikes of `alice`: a Cyrillic `а`, full-width letters.
        assert!(Username::parse("\u{430}lice").is_err());
        assert!(Username::parse("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}").is_err());
        assert!(Username::parse("José").is_err());
    }

    #[test]
    fn emails() {
        assert!(Email::parse("alice@example.com").is_ok());
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn text_limits() {
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(CommentContent::parse(&"x".repeat(8 * 1024)).is_ok());
        let err = CommentContent::parse(&"x".repeat(8 * 1024 + 1)).expect_err("too long");
        assert_eq!(
            err.to_string(),
            "content is too long: 8193 bytes, at most 8192"
        );
        assert!(PostContent::parse(&"x".repeat(64 * 1024 + 1)).is_err());
    }

    #[test]
    fn page_sizes() {
        assert_eq!(PageSize::parse(0, "first").map(PageSize::get), Ok(0));
        assert_eq!(PageSize::parse(100, "last").map(PageSize::get), Ok(100));
        assert!(PageSize::parse(101, "first").is_err());
        assert!(PageSize::parse(-1, "first").is_err());
    }
}
