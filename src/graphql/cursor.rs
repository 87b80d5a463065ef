//! Opaque cursors: a list's name, its parent, and DynamoDB's key of an item, as base64url
//! JSON. A cursor of another list or another parent is refused before any request.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{error::AppError, storage::PageKey};

/// Far above any real cursor, far below what could cost anything to decode.
const MAX_CURSOR_LEN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum List {
    Users,
    UserPosts,
    PostComments,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    l: List,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    p: String,
    k: PageKey,
}

pub(super) fn encode(list: List, parent: &str, key: &PageKey) -> String {
    let cursor = Cursor {
        l: list,
        p: parent.to_owned(),
        k: key.clone(),
    };
    // Serialising plain strings and maps cannot fail.
    let json = serde_json::to_vec(&cursor).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The position `after` names in the list `list` of `parent`.
pub(super) fn decode(
    list: List,
    parent: &str,
    after: Option<&str>,
) -> Result<Option<PageKey>, AppError> {
    let Some(after) = after else {
        return Ok(None);
    };
    let invalid = || AppError::BadUserInput("`after` is not a valid cursor".to_owned());
    if after.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(after).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.l != list || cursor.p != parent {
        return Err(AppError::BadUserInput(
            "`after` is a cursor of another list".to_owned(),
        ));
    }
    Ok(Some(cursor.k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_belong_to_their_list() {
        let key: PageKey = serde_json::from_str(r#"{"UserId":{"S":"u1"}}"#).expect("key");
        let cursor = encode(List::Users, "", &key);
        assert_eq!(decode(List::Users, "", Some(&cursor)).ok(), Some(Some(key)));
        assert!(decode(List::UserPosts, "", Some(&cursor)).is_err());
        assert!(decode(List::Users, "other", Some(&cursor)).is_err());
        assert!(decode(List::Users, "", Some("not base64!")).is_err());
        assert!(decode(List::Users, "", Some("e30")).is_err());
    }
}
