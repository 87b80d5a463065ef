// Objects by global id: one through node(id:), several through nodes(ids:).
import { graphql } from 'relay-runtime';

export const commentNodeQuery = graphql`
  query NodesCommentQuery($id: ID!) {
    node(id: $id) {
      __typename
      id
      ... on Comment {
        content
        version
        post {
          id
          title
        }
      }
    }
  }
`;

export const manyNodesQuery = graphql`
  query NodesManyQuery($ids: [ID!]!) {
    nodes(ids: $ids) {
      __typename
      id
      ... on User {
        username
      }
      ... on Post {
        title
        commentCount
      }
      ... on Comment {
        content
      }
    }
  }
`;
