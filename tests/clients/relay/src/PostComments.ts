// A post's comments, paged both ways: usePaginationFragment's loadNext(count) asks for
// first/after, loadPrevious(count) for last/before. @refetchable gives it the query that
// fetches each further page (PostCommentsPaginationQuery, through Query.node).
import { graphql } from 'relay-runtime';

export const postCommentsFragment = graphql`
  fragment PostComments_post on Post
  @refetchable(queryName: "PostCommentsPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    id
    comments(first: $first, after: $after, last: $last, before: $before)
      @connection(key: "Post_comments") {
      totalCount
      edges {
        node {
          id
          content
          createdAt
          version
          author {
            id
            username
          }
        }
      }
    }
  }
`;
