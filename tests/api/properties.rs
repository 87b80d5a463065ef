//! Generated hostile requests, on every transport: deep values behind comments and
//! strings of every kind, graphs of fragments (cycles included), and oversized or deeply
//! nested variables. Whatever comes, the answer is a well-formed GraphQL answer within a
//! second, and the server lives on. The cases come from a fixed seed, so a failure
//! reproduces.

use std::time::{Duration, Instant};

use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::{Value, json};

use crate::{
    hardening::{TRANSPORTS, alive, codes_of, errors_via},
    helpers::spawn_app,
};

/// `count` values of `strategy`, from a fixed seed.
fn generate<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
        .collect()
}

/// Things the lexer skips or a list may hold, with every line terminator and quote form.
fn trivia() -> impl Strategy<Value = String> {
    let text = proptest::collection::vec(
        prop_oneof![
            Just("["),
            Just("{"),
            Just("#"),
            Just(" "),
            Just("\\"),
            Just("\""),
            Just("x")
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof![
        (
            text.clone(),
            prop_oneof![Just("\n"), Just("\r"), Just("\r\n"), Just("")]
        )
            .prop_map(|(text, end)| format!("#{text}{end}")),
        text.clone().prop_map(|text| format!("\"\"\"{text}\"\"\"")),
        text.clone().prop_map(|text| format!("\"\"\"{text}\"")),
        text.prop_map(|text| format!("\"{text}\"")),
        Just("1,".to_owned()),
        Just("\u{feff}".to_owned()),
    ]
}

fn deep_documents() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(trivia(), 0..8),
        65usize..3000,
        0usize..3,
    )
        .prop_map(|(trivia, depth, shape)| {
            let trivia = trivia.concat();
            let (open, close) = if shape == 0 { ("{a:", "}") } else { ("[", "]") };
            let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            match shape {
                2 => format!("query($v: [Int] = [{trivia} {deep}]) {{ viewer {{ id }} }}"),
                _ => format!("{{ user(id: [{trivia} {deep}]) {{ id }} }}"),
            }
        })
}

/// Fragments on `Query` spreading each other at random (cycles, bombs and chains all
/// come up), the operation spreading the first.
fn fragment_graphs() -> impl Strategy<Value = String> {
    (1usize..40)
        .prop_flat_map(|count| {
            proptest::collection::vec(proptest::collection::vec(0..count, 0..6), count)
        })
        .prop_map(|spreads| {
            let mut document = String::from("{ ...F0 }");
            for (i, targets) in spreads.iter().enumerate() {
                let spreads: String = targets.iter().map(|t| format!(" ...F{t}")).collect();
                document.push_str(&format!(
                    " fragment F{i} on Query {{ viewer {{ id }}{spreads} }}"
                ));
            }
            document
        })
}

fn variables() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0usize..600_000).prop_map(|size| json!({ "blob": "x".repeat(size) })),
        (1usize..400).prop_map(|depth| {
            let mut value = json!(1);
            for _ in 0..depth {
                value = json!([value]);
            }
            json!({ "deep": value })
        }),
        (0usize..20_000).prop_map(|count| json!({ "many": vec![0; count] })),
    ]
}

/// Every answer is a GraphQL answer: data, or errors with one of the contract's codes.
fn assert_answered(errors: &[Value], what: &str) {
    const CODES: &[&str] = &[
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
        "QUERY_TOO_COMPLEX",
    ];
    for code in codes_of(errors) {
        assert!(CODES.contains(&code), "{what}: {errors:?}");
    }
}

#[tokio::test]
async fn generated_hostile_requests_get_answers_and_the_server_lives() {
    let app = spawn_app().await;
    let deep = generate(deep_documents(), 45);
    let graphs = generate(fragment_graphs(), 45);
    let variables = generate(variables(), 30);
    for (i, document) in deep.iter().enumerate() {
        let via = TRANSPORTS[i % 3];
        let errors = errors_via(&app, via, document, json!({})).await;
        // Refused for its depth, or (when the trivia leaves a string open before the
        // deep part, so the parser stops there) for its syntax.
        let codes = codes_of(&errors);
        assert!(
            codes == ["QUERY_TOO_COMPLEX"] || codes == ["GRAPHQL_PARSE_FAILED"],
            "{via:?}: {codes:?} {document:.200}"
        );
    }
    for (i, document) in graphs.iter().enumerate() {
        let via = TRANSPORTS[i % 3];
        let started = Instant::now();
        let errors = errors_via(&app, via, document, json!({})).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{via:?}: {document}"
        );
        assert_answered(&errors, document);
    }
    // (Over GET, variables ride in the URL, where HTTP's own header limits apply.)
    for (i, variables) in variables.iter().enumerate() {
        let via = TRANSPORTS[1 + i % 2];
        let errors = errors_via(&app, via, "{ viewer { id } }", variables.clone()).await;
        assert_answered(&errors, &format!("{via:?}: {:.100}", variables.to_string()));
    }
    alive(&app).await;
}
