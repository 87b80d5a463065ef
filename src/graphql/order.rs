//! Puts response fields in the order the query asked for them.
//!
//! async-graphql 7 resolves an object's fields concurrently and writes each one as it
//! completes, so `{ author { username } id }` may answer `id` first. The GraphQL spec
//! has responses keep the selection order, and clients that diff responses as text
//! depend on it; the pipeline reorders each response by the request's parsed document
//! after execution.

use async_graphql::{
    Name, Value,
    indexmap::IndexMap,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// Puts `data`, the response to the operation `operation_name` of `document`, in the
/// document's order.
pub(super) fn in_selection_order(
    data: &mut Value,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) {
    let operation = document.operations.iter().find(|(name, _)| {
        operation_name.is_none_or(|wanted| name.is_some_and(|n| n.as_str() == wanted))
    });
    if let Some((_, operation)) = operation {
        reorder(data, &[&operation.node.selection_set.node], document);
    }
}

/// The response keys a selection set produces, in order, each with the selection sets
/// below it (a key selected twice, say through two fragments, has several).
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    order: &mut IndexMap<&'a str, Vec<&'a SelectionSet>>,
    depth: usize,
) {
    // Fragment cycles are refused before execution; the bound only guards the walk.
    if depth > 64 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                let key = field.alias.as_ref().unwrap_or(&field.name).node.as_str();
                order
                    .entry(key)
                    .or_default()
                    .push(&field.selection_set.node);
            }
            Selection::InlineFragment(fragment) => {
                collect(
                    &fragment.node.selection_set.node,
                    document,
                    order,
                    depth + 1,
                );
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(
                        &fragment.node.selection_set.node,
                        document,
                        order,
                        depth + 1,
                    );
                }
            }
        }
    }
}

fn reorder(value: &mut Value, sets: &[&SelectionSet], document: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                reorder(item, sets, document);
            }
        }
        Value::Object(map) => {
            let mut order = IndexMap::new();
            for set in sets {
                collect(set, document, &mut order, 0);
            }
            let mut sorted: IndexMap<Name, Value> = IndexMap::with_capacity(map.len());
            for (key, below) in &order {
                if let Some((name, mut child)) = map.shift_remove_entry(*key) {
                    reorder(&mut child, below, document);
                    sorted.insert(name, child);
                }
            }
            sorted.extend(map.drain(..));
            *map = sorted;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_selection_order_through_aliases_fragments_and_lists() {
        let document = async_graphql::parser::parse_query(
            "{ b: user { ...F id } a: post { x } } fragment F on User { posts { nodes { z y } } }",
        )
        .expect("parses");
        let mut data = Value::from_json(serde_json::json!({
            "a": { "x": 1 },
            "b": { "id": "u", "posts": { "nodes": [{ "y": 1, "z": 2 }, { "y": 3, "z": 4 }] } }
        }))
        .expect("value");
        let (_, operation) = document.operations.iter().next().expect("an operation");
        reorder(&mut data, &[&operation.node.selection_set.node], &document);
        assert_eq!(
            serde_json::to_string(&data).expect("json"),
            r#"{"b":{"posts":{"nodes":[{"z":2,"y":1},{"z":4,"y":3}]},"id":"u"},"a":{"x":1}}"#
        );
    }
}
