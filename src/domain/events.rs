use super::{Comment, Post};

/// Something that happened to the blog's data, as read back from the tables themselves.
#[derive(Clone, Debug)]
pub enum Event {
    CommentAdded(Comment),
    PostAdded(Post),
}
