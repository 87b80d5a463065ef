//! Cursors in the client's words: storage writes and reads them (see
//! `storage::cursor`); here a cursor that names no position of the list becomes
//! `BAD_USER_INPUT`, before any request.

use crate::{
    error::AppError,
    storage::{CursorError, List, PageKey},
};

/// The position `after` names in the list `list` of `parent`.
pub(super) fn decode(
    list: List,
    parent: &str,
    after: Option<&str>,
) -> Result<Option<PageKey>, AppError> {
    let Some(after) = after else {
        return Ok(None);
    };
    list.position(parent, after).map(Some).map_err(|err| {
        AppError::BadUserInput(
            match err {
                CursorError::Invalid => "`after` is not a valid cursor",
                CursorError::OtherList => "`after` is a cursor of another list",
            }
            .to_owned(),
        )
    })
}
