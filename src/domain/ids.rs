use std::fmt;

use super::InputError;

/// The longest id accepted from a client. DynamoDB allows 2048 bytes in a partition key;
/// ids the server makes are 36-character UUIDs, and Da Vinci's examples are short words.
const MAX_ID_BYTES: usize = 256;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A new random id (UUID v4), as Da Vinci makes them.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Checks an id that came from outside: not empty, not over 256 bytes,
            /// no control characters.
            pub fn parse(raw: impl Into<String>) -> Result<Self, InputError> {
                let raw = raw.into();
                if raw.is_empty() {
                    return Err(InputError::new(concat!($what, " must not be empty")));
                }
                if raw.len() > MAX_ID_BYTES {
                    return Err(InputError::new(format!(
                        concat!($what, " is too long ({} bytes; at most {})"),
                        raw.len(),
                        MAX_ID_BYTES
                    )));
                }
                if raw.chars().any(char::is_control) {
                    return Err(InputError::new(concat!($what, " must not contain control characters")));
                }
                Ok(Self(raw))
            }

            /// An id read back from storage, trusted as it is.
            pub fn from_stored(raw: String) -> Self {
                Self(raw)
            }

            /// The id as text, as the tables store it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string, without a copy.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user's id (`UserId` in the tables).
    UserId,
    "user id"
);
id_type!(
    /// A post's id (`PostId` in the tables).
    PostId,
    "post id"
);
id_type!(
    /// A comment's id (`CommentId` in the tables).
    CommentId,
    "comment id"
);
id_type!(
    /// An id of any of the three tables, as `node(id:)` takes it.
    AnyId,
    "id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("x".repeat(257)).is_err());
        assert!(UserId::parse("a\u{0}b").is_err());
        assert_eq!(
            UserId::parse("user-1").map(|id| id.to_string()),
            Ok("user-1".into())
        );
    }

    #[test]
    fn generated_ids_are_uuids() {
        let id = PostId::generate();
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
    }
}
