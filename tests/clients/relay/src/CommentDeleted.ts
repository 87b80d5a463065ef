// Comments deleted from a post, as they go: the subscription's payload has the comment's id,
// which is what a Relay updater needs to remove it from Post_comments.
import { graphql } from 'relay-runtime';

export const commentDeletedSubscription = graphql`
  subscription CommentDeletedSubscription($postId: ID!) {
    commentDeleted(postId: $postId) {
      id
      post {
        id
        commentCount
      }
    }
  }
`;
