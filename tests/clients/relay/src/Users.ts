// The first page of all users, with how many there are.
import { graphql } from 'relay-runtime';

export const usersQuery = graphql`
  query UsersQuery($first: Int!) {
    users(first: $first) {
      totalCount
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        username
      }
    }
  }
`;
