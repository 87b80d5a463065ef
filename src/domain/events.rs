use super::{Comment, Post};

/// Something that happened to the blog's data, as read back from the tables themselves.
#[derive(Clone, Debug)]
pub enum Event {
    /// A comment was added to a post.
    CommentAdded(Comment),
    /// A post was created.
    PostAdded(Post),
    /// A comment's content was edited: the comment after the edit.
    CommentUpdated(Comment),
    /// A comment was deleted: the comment as it was.
    CommentDeleted(Comment),
    /// A post's title or content was edited: the post after the edit.
    PostUpdated(Post),
    /// A post was deleted: the post as it was.
    PostDeleted(Post),
}
