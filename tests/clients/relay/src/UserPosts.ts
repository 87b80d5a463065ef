// A user's posts, paged both ways and narrowed to a time window. createdAfter/createdBefore
// are the connection's filters: each window is a list of its own in Relay's store.
import { graphql } from 'relay-runtime';

export const userPostsFragment = graphql`
  fragment UserPosts_user on User
  @refetchable(queryName: "UserPostsPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
    createdAfter: { type: "DateTime" }
    createdBefore: { type: "DateTime" }
  ) {
    id
    username
    posts(
      first: $first
      after: $after
      last: $last
      before: $before
      createdAfter: $createdAfter
      createdBefore: $createdBefore
    ) @connection(key: "UserPosts_posts", filters: ["createdAfter", "createdBefore"]) {
      totalCount
      edges {
        node {
          id
          title
          createdAt
          commentCount
        }
      }
    }
  }
`;
