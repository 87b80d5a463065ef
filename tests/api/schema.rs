#[test]
fn schema_graphql_is_the_code_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let from_code = blog_graphql::graphql::sdl();
    assert!(
        on_disk == from_code,
        "schema.graphql differs from the code's schema; regenerate it with\n\
         \n    cargo run -- export-schema > schema.graphql\n"
    );
}

#[test]
fn the_schema_holds_the_contract() {
    let sdl = blog_graphql::graphql::sdl();
    for line in [
        "scalar DateTime",
        "posts(first: Int, after: String, last: Int, before: String, createdAfter: DateTime, createdBefore: DateTime): PostConnection!",
        "comments(first: Int, after: String, last: Int, before: String, createdAfter: DateTime, createdBefore: DateTime): CommentConnection!",
        "users(first: Int, after: String, last: Int, before: String): UserConnection!",
        "interface Node {",
        "type User implements Node {",
        "type Post implements Node {",
        "type Comment implements Node {",
        "node(id: ID!): Node",
        "nodes(ids: [ID!]!): [Node]!",
        "totalCount: Int!",
        "commentUpdated(postId: ID!): Comment!",
        "commentDeleted(postId: ID!): Comment!",
        "postUpdated(id: ID!): Post!",
        "postDeleted(authorId: ID): Post!",
        "user(id: ID!): User",
        "viewer: User",
        "createUser(input: CreateUserInput!): User!",
        "createPost(input: CreatePostInput!): Post!",
        "addComment(input: AddCommentInput!): Comment!",
        "type PageInfo",
    ] {
        assert!(sdl.contains(line), "the schema lacks `{line}`");
    }
}
