//! Cursors in the client's words: storage writes and reads them (see
//! `storage::cursor`); here a cursor that names no position of the list becomes
//! `BAD_USER_INPUT`, before any request.

use crate::{
    error::AppError,
    storage::{CursorError, List, PageKey, TimeRange},
};

/// The position the cursor `text` (the argument `argument`) names in the list `list` of
/// `parent`, under `range`.
pub(super) fn decode(
    list: List,
    parent: &str,
    range: &TimeRange,
    text: Option<&str>,
    argument: &str,
) -> Result<Option<PageKey>, AppError> {
    let Some(text) = text else {
        return Ok(None);
    };
    list.position(parent, range, text).map(Some).map_err(|err| {
        AppError::BadUserInput(match err {
            CursorError::Invalid => format!("`{argument}` is not a valid cursor"),
            CursorError::OtherList => format!("`{argument}` is a cursor of another list"),
            CursorError::OtherRange => format!(
                "`{argument}` is a cursor of this list under another `createdAfter`/\
                 `createdBefore` range; a cursor holds only with the range it came with"
            ),
        })
    })
}
