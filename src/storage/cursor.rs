//! Positions in a list, and the cursors that carry them to clients.
//!
//! A position is the key of an item (the table's key and, for an index, the index's), as
//! DynamoDB's `ExclusiveStartKey` takes it. A cursor carries its values only, in the
//! list's own key order, never the names or types of the attributes they come from;
//! this module alone knows that order, and checks every cursor a client hands back.
//!
//! Version 1: base64url (no padding) of the JSON array `[1, list, scope, values…]`, where
//! `list` is `"u"`, `"p"` or `"c"`, `scope` the id the list belongs to (`""` for all
//! users) or, for a page of a time range, `[id, after, before]` (each bound the stored
//! number, or null), and each value a string. Anything else, older cursors included, is
//! refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

use super::attributes::{COMMENT_ID, CREATED_AT, POST_ID, USER_ID};
use super::items::Item;
use super::range::TimeRange;
use aws_sdk_dynamodb::types::AttributeValue;

/// The version of the cursors this server writes.
const VERSION: u64 = 1;
/// Far above any real cursor, far below what could cost anything to decode.
const MAX_CURSOR_LEN: usize = 4096;
/// Longest string value a position may hold (DynamoDB's limit for a partition key).
const MAX_VALUE_LEN: usize = 2048;

/// A list clients page through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum List {
    /// All users, in the table's order.
    Users,
    /// A user's posts, newest first (`user_posts_index`).
    UserPosts,
    /// A post's comments, oldest first (`post_comments_index`).
    PostComments,
}

impl List {
    /// The list's key attributes, in the order a position holds them, each with whether
    /// it is a number.
    pub(super) fn key(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Users => &[(USER_ID, false)],
            Self::UserPosts => &[(POST_ID, false), (USER_ID, false), (CREATED_AT, true)],
            Self::PostComments => &[(COMMENT_ID, false), (POST_ID, false), (CREATED_AT, true)],
        }
    }

    /// Which value of a position is the parent's id: the partition of the list's index.
    fn partition(self) -> Option<usize> {
        match self {
            Self::Users => None,
            Self::UserPosts | Self::PostComments => Some(1),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Users => "u",
            Self::UserPosts => "p",
            Self::PostComments => "c",
        }
    }

    /// The position a client's cursor names in this list of `parent`, under `range`.
    pub fn position(
        self,
        parent: &str,
        range: &TimeRange,
        cursor: &str,
    ) -> Result<PageKey, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::Invalid)?;
        let Ok(Value::Array(parts)) = serde_json::from_slice(&bytes) else {
            return Err(CursorError::Invalid);
        };
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let (Some(version), Some(tag), Some(scope)) = (
            parts.first().and_then(Value::as_u64),
            parts.get(1).and_then(text),
            parts.get(2),
        ) else {
            return Err(CursorError::Invalid);
        };
        if version != VERSION {
            return Err(CursorError::Invalid);
        }
        let (owner, bounds) = match scope {
            Value::String(owner) => (owner.as_str(), None),
            Value::Array(scope) => match scope.as_slice() {
                [Value::String(owner), after, before] => (owner.as_str(), Some((after, before))),
                _ => return Err(CursorError::Invalid),
            },
            _ => return Err(CursorError::Invalid),
        };
        if tag != self.tag() || owner != parent {
            return Err(CursorError::OtherList);
        }
        let bound = |value: Option<&str>| value.map_or(Value::Null, Value::from);
        let same_range = match bounds {
            None => range.is_everything(),
            Some((after, before)) => {
                !range.is_everything()
                    && *after == bound(range.after())
                    && *before == bound(range.before())
            }
        };
        if !same_range {
            return Err(CursorError::OtherRange);
        }
        let values = parts[3..]
            .iter()
            .map(text)
            .collect::<Option<Vec<String>>>()
            .ok_or(CursorError::Invalid)?;
        let key = self.key();
        let fits = values.len() == key.len()
            && values.iter().zip(key).all(|(value, (_, numeric))| {
                if *numeric {
                    is_plain_number(value)
                } else {
                    !value.is_empty() && value.len() <= MAX_VALUE_LEN
                }
            });
        if !fits {
            return Err(CursorError::Invalid);
        }
        // A position of another parent's list is not one of this list.
        if self.partition().is_some_and(|at| values[at] != parent) {
            return Err(CursorError::OtherList);
        }
        // Nor is a time outside the range (DynamoDB refuses a start key outside the key
        // condition): a cursor was edited.
        let outside = key
            .iter()
            .zip(&values)
            .any(|((name, _), value)| *name == CREATED_AT && !range.holds(value));
        if outside {
            return Err(CursorError::Invalid);
        }
        Ok(PageKey { list: self, values })
    }
}

/// Why a client's cursor names no position of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorError {
    /// Not a cursor this server wrote (or not one it still reads).
    Invalid,
    /// A cursor of another list, or of the same list of another parent.
    OtherList,
    /// A cursor of the same list under another time range (or under none).
    OtherRange,
}

/// A position in a list: the key values of an item, in the list's key order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    list: List,
    values: Vec<String>,
}

impl PageKey {
    /// The position of a stored item of `list`.
    pub(super) fn of_item(item: &Item, list: List) -> anyhow::Result<Self> {
        let values = list
            .key()
            .iter()
            .map(|(name, _)| match item.get(*name) {
                Some(AttributeValue::S(value) | AttributeValue::N(value)) => Ok(value.clone()),
                _ => Err(anyhow::anyhow!(
                    "stored item lacks its key attribute {name}"
                )),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { list, values })
    }

    /// The list this is a position of.
    pub(super) fn list(&self) -> List {
        self.list
    }

    /// The position as DynamoDB's `ExclusiveStartKey`.
    pub(super) fn to_item(&self) -> Item {
        self.list
            .key()
            .iter()
            .zip(&self.values)
            .map(|((name, numeric), value)| {
                let value = if *numeric {
                    AttributeValue::N(value.clone())
                } else {
                    AttributeValue::S(value.clone())
                };
                ((*name).to_owned(), value)
            })
            .collect()
    }

    /// The cursor that names this position in the list of `parent`, under `range`.
    pub fn cursor(&self, parent: &str, range: &TimeRange) -> String {
        let scope = if range.is_everything() {
            Value::from(parent)
        } else {
            let bound = |value: Option<&str>| value.map_or(Value::Null, Value::from);
            Value::Array(vec![
                Value::from(parent),
                bound(range.after()),
                bound(range.before()),
            ])
        };
        let mut parts = vec![Value::from(VERSION), Value::from(self.list.tag()), scope];
        parts.extend(self.values.iter().map(|value| Value::from(value.as_str())));
        URL_SAFE_NO_PAD.encode(Value::Array(parts).to_string())
    }
}

/// A number as this server writes keys: digits with an optional sign and fraction, no
/// exponent, within DynamoDB's 38 digits of precision. `NaN`, `inf` or `1e200` would pass
/// a float parser and then fail in DynamoDB; here they are simply not a position.
fn is_plain_number(n: &str) -> bool {
    let unsigned = n.strip_prefix('-').unwrap_or(n);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits) && whole.len() + fraction.map_or(0, str::len) <= 38
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    fn post(author: &str, created: &str) -> PageKey {
        let stored = item(&[
            ("PostId", AttributeValue::S("p".into())),
            ("UserId", AttributeValue::S(author.into())),
            ("CreatedAt", AttributeValue::N(created.into())),
            ("Title", AttributeValue::S("t".into())),
        ]);
        PageKey::of_item(&stored, List::UserPosts).expect("a position")
    }

    fn forged(parts: Value) -> String {
        URL_SAFE_NO_PAD.encode(parts.to_string())
    }

    #[test]
    fn a_cursor_names_its_position_and_no_attribute() {
        let key = post("u", "1.5");
        let cursor = key.cursor("u", &TimeRange::default());
        let text =
            String::from_utf8(URL_SAFE_NO_PAD.decode(&cursor).expect("base64")).expect("text");
        assert_eq!(text, r#"[1,"p","u","p","u","1.5"]"#);
        for name in ["PostId", "UserId", "CreatedAt", "\"S\"", "\"N\""] {
            assert!(!text.contains(name), "{text}");
        }
        assert_eq!(
            List::UserPosts.position("u", &TimeRange::default(), &cursor),
            Ok(key.clone())
        );
        assert_eq!(key.to_item()["CreatedAt"], AttributeValue::N("1.5".into()));
    }

    #[test]
    fn cursors_belong_to_their_list_and_parent() {
        let cursor = post("u", "1.5").cursor("u", &TimeRange::default());
        assert_eq!(
            List::PostComments.position("u", &TimeRange::default(), &cursor),
            Err(CursorError::OtherList)
        );
        assert_eq!(
            List::UserPosts.position("other", &TimeRange::default(), &cursor),
            Err(CursorError::OtherList)
        );
        // Claiming another parent than the position's own partition.
        let moved = forged(serde_json::json!([1, "p", "v", "p", "u", "1"]));
        assert_eq!(
            List::UserPosts.position("v", &TimeRange::default(), &moved),
            Err(CursorError::OtherList)
        );
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        let old =
            forged(serde_json::json!({ "l": "users", "p": "", "k": { "UserId": { "S": "u" } } }));
        let mut bad = vec![
            String::new(),
            "!!!".to_owned(),
            "A".repeat(10_000),
            old,
            forged(serde_json::json!([2, "p", "u", "p", "u", "1"])),
            forged(serde_json::json!([1, "p", "u", "p", "u"])),
            forged(serde_json::json!([1, "p", "u", "p", "u", 1])),
            forged(serde_json::json!([1, "p", "u", "", "u", "1"])),
        ];
        for number in [
            "NaN", "inf", "-inf", "1e200", "1.5e3", "", "-", "1.", ".5", "0x10", "+1",
        ] {
            bad.push(forged(serde_json::json!([1, "p", "u", "p", "u", number])));
        }
        for cursor in bad {
            assert_eq!(
                List::UserPosts.position("u", &TimeRange::default(), &cursor),
                Err(CursorError::Invalid),
                "{cursor}"
            );
        }
        assert!(is_plain_number("1735732802.5") && is_plain_number("-3"));
    }

    #[test]
    fn a_cursor_holds_only_under_the_range_it_was_made_with() {
        let march = TimeRange::new(
            Some(chrono::DateTime::from_timestamp(1_772_323_200, 0).expect("time")),
            None,
        );
        let april = TimeRange::new(
            Some(chrono::DateTime::from_timestamp(1_775_001_600, 500_000_000).expect("time")),
            None,
        );
        let everything = TimeRange::default();
        let key = post("u", "1775001700");
        let ranged = key.cursor("u", &march);
        let text =
            String::from_utf8(URL_SAFE_NO_PAD.decode(&ranged).expect("base64")).expect("text");
        assert_eq!(
            text,
            r#"[1,"p",["u","1772323200",null],"p","u","1775001700"]"#
        );
        assert_eq!(
            List::UserPosts.position("u", &march, &ranged),
            Ok(key.clone())
        );
        for (range, cursor) in [
            (&april, &ranged),
            (&everything, &ranged),
            (&march, &key.cursor("u", &everything)),
        ] {
            assert_eq!(
                List::UserPosts.position("u", range, cursor),
                Err(CursorError::OtherRange)
            );
        }
        assert_eq!(april.after(), Some("1775001600.5"));
        // The range's own scope, with a time edited to lie outside it.
        let edited = forged(serde_json::json!([
            1,
            "p",
            ["u", "1772323200", null],
            "p",
            "u",
            "1772323200"
        ]));
        assert_eq!(
            List::UserPosts.position("u", &march, &edited),
            Err(CursorError::Invalid)
        );
    }
}
