use super::{fields::is_connection, *};

fn parse(query: &str) -> ExecutableDocument {
    async_graphql::parser::parse_query(query).expect("parses")
}

fn measure_of(query: &str) -> Measure {
    measure_with(query, Variables::default())
}

fn types() -> FieldTypes {
    FieldTypes::from_sdl(&crate::graphql::sdl())
}

fn measure_with(query: &str, variables: Variables) -> Measure {
    let document = parse(query);
    let operation = selected(&document, None).expect("one operation");
    measure(&document, &variables, &operation.node, &types())
}

fn check(limits: QueryLimits, query: &str) -> Result<Measure, String> {
    let document = parse(query);
    let operation = selected(&document, None).expect("one operation");
    limits
        .check(&document, &Variables::default(), &operation.node, &types())
        .map_err(|e| e.message)
}

#[test]
fn every_field_with_a_first_argument_is_a_connection() {
    // The cost multiplies by `first` wherever it is given, and by the default page
    // size where a connection leaves it out: the two must name the same fields.
    let sdl = crate::graphql::sdl();
    let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let types = types();
    let mut connections = 0;
    for definition in document.definitions {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let TypeSystemDefinition::Type(definition) = definition else {
            continue;
        };
        let TypeKind::Object(object) = &definition.node.kind else {
            continue;
        };
        let parent = definition.node.name.node.as_str();
        for field in &object.fields {
            let name = field.node.name.node.as_str();
            let pages = field
                .node
                .arguments
                .iter()
                .any(|argument| argument.node.name.node == "first");
            let connection = types.field(parent, name).is_some_and(is_connection);
            assert_eq!(pages, connection, "{parent}.{name}");
            connections += usize::from(connection);
        }
    }
    assert!(connections >= 3, "users, posts and comments at least");
}

#[test]
fn first_multiplies_what_a_connection_selects() {
    let m = measure_of("{ users(first: 50) { nodes { id posts(first: 3) { nodes { title } } } } }");
    // users 1 + 50 × (nodes 1 + id 1 + posts 1 + 3 × (nodes 1 + title 1))
    assert_eq!(
        m,
        Measure {
            depth: 5,
            nesting: 4,
            fields: 6,
            cost: 1 + 50 * (3 + 3 * 2),
            ..Measure::default()
        }
    );
    // No `first`: the default page size, 20.
    assert_eq!(measure_of("{ users { nodes { id } } }").cost, 1 + 20 * 2);
    // Out of range counts as the nearest valid size; the resolver refuses it.
    assert_eq!(
        measure_of("{ users(first: 100000) { nodes { id } } }").cost,
        1 + 100 * 2
    );
}

#[test]
fn a_first_from_a_variable_counts_at_its_value_or_its_default() {
    let query = "query($n: Int = 100) { users(first: $n) { nodes { id } } }";
    // Left out of `variables`: the default, as execution will use it.
    assert_eq!(measure_of(query).cost, 1 + 100 * 2);
    let given = Variables::from_json(serde_json::json!({ "n": 5 }));
    assert_eq!(measure_with(query, given).cost, 1 + 5 * 2);
    let null = Variables::from_json(serde_json::json!({ "n": null }));
    assert_eq!(measure_with(query, null).cost, 1 + 20 * 2);
    // No default, not given: null, so the default page size.
    assert_eq!(
        measure_of("query($n: Int) { users(first: $n) { nodes { id } } }").cost,
        1 + 20 * 2
    );
}

#[test]
fn the_canonical_operations_are_well_inside_the_default_limits() {
    let document = parse(include_str!("../../../tests/api/operations.graphql"));
    let limits = QueryLimits::default();
    let types = types();
    let mut costs = Vec::new();
    for (name, operation) in document.operations.iter() {
        let m = limits
            .check(&document, &Variables::default(), &operation.node, &types)
            .expect("within the limits");
        costs.push((name.map(|n| n.to_string()).unwrap_or_default(), m.cost));
    }
    costs.sort();
    // The figures the README gives.
    assert_eq!(
        costs,
        [
            ("AddComment".to_owned(), 16),
            ("CommentAdded".to_owned(), 12),
            ("CreatePost".to_owned(), 5),
            ("CreateUser".to_owned(), 4),
            ("PostDetails".to_owned(), 413),
            ("UserFeed".to_owned(), 654),
            ("UsersPage".to_owned(), 801),
        ]
    );
    assert!(801 * 10 <= limits.max_cost);
    assert!(12 * 5 <= limits.max_subscription_cost);
}

#[test]
fn fragments_count_where_they_are_spread_and_cycles_end() {
    let m = measure_of(
        "query { a: user(id: \"1\") { ...F } b: user(id: \"2\") { ...F } } \
         fragment F on User { id username ...G } fragment G on User { ...F }",
    );
    assert_eq!(m.fields, 2 + 2 * 2);
    assert_eq!(m.depth, 2);
}

#[test]
fn fragment_bombs_are_measured_in_linear_time() {
    // Each fragment spreads the previous one twice: 2^40 fields if expanded.
    let mut query = String::from("{ user(id: \"1\") { ...F0 } } fragment F0 on User { id }");
    for i in 1..=40 {
        query.push_str(&format!(
            " fragment F{i} on User {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    query = query.replace("...F0 } }", "...F40 } }");
    let m = measure_of(&query);
    assert!(
        m.fields > 1_000_000_000,
        "counted as expanded: {}",
        m.fields
    );
}

#[test]
fn long_chains_of_fragments_are_refused_without_deep_recursion() {
    // 5,000 fragments, each spreading the next: the walk stops at the limit.
    let mut query = String::from("{ ...F0 }");
    for i in 0..5_000 {
        query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    query.push_str(" fragment F5000 on Query { viewer { id } }");
    let error = check(QueryLimits::default(), &query).expect_err("refused");
    assert!(error.contains("more than 64 levels"), "{error}");
    // At the limit and below, a chain is fine.
    let mut query = String::from("{ ...F0 }");
    for i in 0..40 {
        query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    query.push_str(" fragment F40 on Query { viewer { id } }");
    assert!(check(QueryLimits::default(), &query).is_ok());
}

#[test]
fn spreads_in_production_are_checked_once_each() {
    let limits = QueryLimits {
        introspection: false,
        ..QueryLimits::default()
    };
    // Four, then eight spreads of a fragment that spreads itself: exponential if
    // followed without memory, refused at once here.
    for spreads in [4, 8] {
        let query = format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            "...F ".repeat(spreads)
        );
        let started = std::time::Instant::now();
        let error = check(limits, &query).expect_err("a cycle");
        assert!(error.contains("spreads itself"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }
    let error = check(
        limits,
        "{ ...I } fragment I on Query { __schema { types { name } } }",
    )
    .expect_err("introspection through a fragment");
    assert!(error.contains("introspection"), "{error}");
}

#[test]
fn spreads_of_unknown_fragments_are_refused_before_anything_expands_them() {
    // Doubling chains over a fragment that spreads one the document lacks: it counts
    // nothing here, and async-graphql would walk 2^40 spreads to find out.
    let mut query = String::from("{ ...F40 } fragment F0 on Query { ...Missing }");
    for i in 1..=40 {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    let started = std::time::Instant::now();
    let error = check(QueryLimits::default(), &query).expect_err("refused");
    assert!(error.contains("unknown fragment \"Missing\""), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn content_counts_for_what_it_may_hold() {
    let aliases: String = (0..97).map(|i| format!("c{i}: content ")).collect();
    let query =
        format!("{{ user(id: \"u\") {{ posts(first: 100) {{ nodes {{ {aliases} }} }} }} }}");
    let error = check(QueryLimits::default(), &query).expect_err("too costly");
    assert!(error.contains("may return"), "{error}");
}

#[test]
fn a_subscription_may_not_page_with_a_cursor() {
    let error = check(
        QueryLimits::default(),
        "subscription { commentAdded(postId: \"p\") { post { comments(first: 2, after: \"x\") { nodes { id } } } } }",
    )
    .expect_err("refused");
    assert!(error.contains("`after`"), "{error}");
    assert!(check(
        QueryLimits::default(),
        "subscription { commentAdded(postId: \"p\") { post { comments(first: 2) { nodes { id } } } } }",
    )
    .is_ok());
}

#[test]
fn unused_fragments_are_refused_before_validation() {
    let error = check(
        QueryLimits::default(),
        "{ viewer { id } } fragment U on Query { viewer { id } }",
    )
    .expect_err("unused");
    assert!(error.contains("never used"), "{error}");
}

#[test]
fn subscriptions_have_their_own_cost_limit() {
    let costly = "subscription { commentAdded(postId: \"p\") { post { comments(first: 50) { nodes { id author { username } } } } } }";
    let error = check(QueryLimits::default(), costly).expect_err("too costly per event");
    assert!(error.contains("a subscription's event"), "{error}");
    let canonical =
        "subscription { commentAdded(postId: \"p\") { id content author { username } } }";
    assert!(check(QueryLimits::default(), canonical).is_ok());
}

const INTROSPECTION_QUERY: &str = include_str!("../../../tests/api/introspection.graphql");

#[test]
fn the_standard_introspection_query_passes_the_default_limits() {
    let m = check(QueryLimits::default(), INTROSPECTION_QUERY).expect("within the limits");
    // `__schema types fields args type name`: `ofType` does not count.
    assert_eq!(m.depth, 6);
    assert_eq!(m.introspection_lists, 1);
    // Nine `ofType`s deep, the document still nests well inside the recursion limit.
    assert!(m.nesting < RECURSION_LIMIT, "{m:?}");
}

#[test]
fn introspection_that_no_tool_sends_is_refused() {
    let limits = QueryLimits::default();
    // Two levels of lists of fields and types, as in `types { fields }` or
    // `__type { fields { type { fields } } }`, pass; a third does not.
    check(
        limits,
        "{ __type(name: \"Post\") { fields { type { fields { name } } } } }",
    )
    .expect("two levels");
    let error = check(
        limits,
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
    )
    .expect_err("three levels");
    assert!(error.contains("3 levels deep; the limit is 2"), "{error}");
    let error = check(
        limits,
        "{ __schema { types { ...T } } } fragment T on __Type { \
         interfaces { possibleTypes { inputFields { name } } } }",
    )
    .expect_err("three levels through a fragment");
    assert!(error.contains("3 levels deep"), "{error}");
    // One `__schema` holds all of it; aliases only repeat it.
    let error = check(
        limits,
        "{ a: __schema { types { name } } b: __schema { types { name } } }",
    )
    .expect_err("two schemas");
    assert!(error.contains("`__schema` 2 times"), "{error}");
    let error = check(
        limits,
        "{ __schema { a: types { name } b: types { name } } }",
    )
    .expect_err("renamed lists");
    assert!(error.contains("may not be renamed"), "{error}");
    check(limits, "{ __schema { types: types { name } } }").expect("an alias of its own name");
    // Fields of one response key merge into one answer: that is still one `__schema`.
    check(
        limits,
        "{ ...A ...B } fragment A on Query { __schema { types { name } } } \
         fragment B on Query { __schema { directives { name } } }",
    )
    .expect("one __schema, selected twice");
    // Twenty `__type` lookups, and no more.
    let lookups = |n: usize| {
        let aliases: String = (0..n)
            .map(|i| format!("t{i}: __type(name: \"Post\") {{ name }} "))
            .collect();
        check(limits, &format!("{{ {aliases} }}"))
    };
    lookups(20).expect("twenty");
    let error = lookups(21).expect_err("twenty-one");
    assert!(error.contains("looks up 21 types"), "{error}");
    // Outside `ofType`, introspection counts toward the depth like any field.
    let deep = "{ __type(name: \"Post\") { fields { args { type { ofType { ofType { \
                fields { args { type { enumValues { name } } } } } } } } } } }";
    assert_eq!(check(limits, deep).map(|m| m.depth), Ok(9));
    let shallow = QueryLimits {
        max_depth: 8,
        ..limits
    };
    let error = check(shallow, deep).expect_err("deeper than 8");
    assert!(error.contains("nested 9 levels deep"), "{error}");
}

#[test]
fn directives_count_and_none_repeats() {
    let limits = QueryLimits::default();
    check(
        limits,
        "query($a: Boolean!, $b: Boolean!) { __typename @include(if: $a) @skip(if: $b) }",
    )
    .expect("two directives");
    let many = format!("{{ __typename {} }}", "@include(if: true) ".repeat(1000));
    let error = check(limits, &many).expect_err("a thousand");
    assert!(
        error.contains("the field `__typename` carries 1000 directives; the limit is 4"),
        "{error}"
    );
    let error = check(
        limits,
        "{ __typename @include(if: true) @include(if: true) }",
    )
    .expect_err("repeated");
    assert!(error.contains("@include is used twice"), "{error}");
    // On every kind of location, fragments included.
    for query in [
        "{ ...F @skip(if: false) @skip(if: false) } fragment F on Query { __typename }",
        "{ ... @skip(if: false) @skip(if: false) { __typename } }",
        "{ ...F } fragment F on Query @skip(if: false) @skip(if: false) { __typename }",
        "query @skip(if: false) @skip(if: false) { __typename }",
    ] {
        let error = check(limits, query).expect_err(query);
        assert!(error.contains("twice"), "{query}: {error}");
    }
    // And each counts as a field.
    let fields = |query: &str| measure_of(query).fields;
    assert_eq!(
        fields("{ __typename @include(if: true) @skip(if: false) }"),
        3
    );
}

#[test]
fn last_node_lookups_and_time_ranges_count_for_what_they_may_read() {
    let cost = |query: &str| measure_of(query).cost;
    // `last` multiplies like `first`; no argument is the default page of 20.
    let forward = cost(r#"{ user(id: "u") { posts(first: 7) { nodes { id } } } }"#);
    assert_eq!(
        cost(r#"{ user(id: "u") { posts(last: 7) { nodes { id } } } }"#),
        forward
    );
    assert_eq!(
        cost("{ users { nodes { id } } }"),
        cost("{ users(first: 20) { nodes { id } } }")
    );
    // `nodes` multiplies by the number of ids it looks up.
    let one = cost(r#"{ nodes(ids: ["a"]) { id ... on Post { title } } }"#);
    let three = cost(r#"{ nodes(ids: ["a", "b", "c"]) { id ... on Post { title } } }"#);
    assert!(three > one && three - 1 == 3 * (one - 1), "{one} {three}");
    let mut variables = Variables::default();
    variables.insert(
        async_graphql::Name::new("ids"),
        async_graphql::Value::List(
            (0..50)
                .map(|i| async_graphql::Value::String(i.to_string()))
                .collect(),
        ),
    );
    let many = measure_with("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", variables);
    assert!(many.cost >= 50, "{}", many.cost);
    // A time range's count on the index counts 100 more than the page.
    let plain = cost(r#"{ user(id: "u") { posts(first: 5) { totalCount } } }"#);
    let ranged = cost(
        r#"{ user(id: "u") { posts(first: 5, createdAfter: "2026-03-01T00:00:00Z") { totalCount } } }"#,
    );
    assert_eq!(ranged, plain + 100);
}

#[test]
fn a_backward_page_of_users_costs_its_walk_through_the_table() {
    let forward = measure_of("{ users(first: 5) { nodes { id } } }").cost;
    let backward = measure_of("{ users(last: 5) { nodes { id } } }").cost;
    assert_eq!(backward, forward + 2_500);
    let five = (0..5)
        .map(|i| format!("u{i}: users(last: 1) {{ nodes {{ id }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let refused = check(QueryLimits::default(), &format!("{{ {five} }}"));
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("12515 objects")),
        "five walks are too many: {refused:?}"
    );
}
