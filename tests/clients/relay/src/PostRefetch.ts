// A post that refetches itself: @refetchable on a type other than Query makes the compiler
// write PostRefetchQuery, which reads the post again through Query.node(id:). That needs
// Post to implement Node (id: ID!) and Query to have node(id: ID!): Node.
import { graphql } from 'relay-runtime';

export const postRefetchFragment = graphql`
  fragment PostRefetch_post on Post @refetchable(queryName: "PostRefetchQuery") {
    id
    title
    content
    version
    updatedAt
    commentCount
  }
`;
