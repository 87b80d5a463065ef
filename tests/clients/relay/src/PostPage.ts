// The queries that render the fragments first: a post with its newest comments, and a user
// with the posts of a time window.
import { graphql } from 'relay-runtime';

export const postPageQuery = graphql`
  query PostPageQuery($id: ID!, $count: Int!) {
    post(id: $id) {
      ...PostRefetch_post
      ...PostComments_post @arguments(last: $count)
    }
  }
`;

export const userPageQuery = graphql`
  query PostPageUserQuery($id: ID!, $count: Int!, $createdAfter: DateTime) {
    user(id: $id) {
      ...UserPosts_user @arguments(first: $count, createdAfter: $createdAfter)
    }
  }
`;
