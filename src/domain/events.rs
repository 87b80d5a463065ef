use super::{Comment, Post};

/// Something that happened to the blog's data, as read back from the tables themselves.
#[derive(Clone, Debug)]
pub enum Event {
    /// A comment was added to a post.
    CommentAdded(Comment),
    /// A post was created.
    PostAdded(Post),
}
