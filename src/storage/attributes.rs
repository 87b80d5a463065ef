//! Every attribute name of the tables, written once: keys, expressions and reads are built
//! from these (the item records of `items.rs` spell the same names through serde, and a
//! test there holds them to these).

/// A user's id: the users table's key, and the author of posts and comments.
pub(super) const USER_ID: &str = "UserId";
/// A post's id: the posts table's key, and the post a comment belongs to.
pub(super) const POST_ID: &str = "PostId";
/// A comment's id: the comments table's key.
pub(super) const COMMENT_ID: &str = "CommentId";
/// A user's name, as they wrote it.
pub(super) const USERNAME: &str = "Username";
/// The key of a username's guard item: the name folded to lower case.
pub(super) const USERNAME_KEY: &str = "UsernameKey";
/// A user's email address.
pub(super) const EMAIL: &str = "Email";
/// A post's title.
pub(super) const TITLE: &str = "Title";
/// A post's or a comment's text.
pub(super) const CONTENT: &str = "Content";
/// When an item was made: the sort key of both indexes.
pub(super) const CREATED_AT: &str = "CreatedAt";
/// When an item last changed.
pub(super) const UPDATED_AT: &str = "UpdatedAt";
/// How many times an item has changed (items without it are at version 1).
pub(super) const VERSION: &str = "Version";
/// A post's number of comments.
pub(super) const COMMENT_COUNT: &str = "CommentCount";
/// A user's number of posts.
pub(super) const POST_COUNT: &str = "PostCount";
/// The number of users, on the users' counter item.
pub(super) const USER_COUNT: &str = "UserCount";
/// The key (in the usernames table) of the item counting the users: no username, folded
/// or not, can start with `#`.
pub(super) const USERS_COUNTER_KEY: &str = "#users";
/// The idempotency table's key: a user's key for one change.
pub(super) const CLAIM_KEY: &str = "ClaimKey";
/// A digest of the request that claimed a key.
pub(super) const FINGERPRINT: &str = "Fingerprint";
/// Epoch seconds after which DynamoDB deletes a record (the table's time to live).
pub(super) const EXPIRES_AT: &str = "ExpiresAt";
/// The prefix of the attributes holding a change's result, one per change.
pub(super) const RESULT_PREFIX: &str = "Result:";
