//! How deeply a document nests, read as GraphQL's lexer reads it, before anything parses it.
//!
//! The parser recurses once per level of `{`, `[` and `(`, so a few kilobytes of brackets
//! would overflow the stack of the thread that parses them; the only defence is to bound
//! the nesting first. Brackets inside strings, block strings and comments do not nest, and
//! the count must skip exactly what the parser skips: a comment ends at `\n`, `\r` or
//! `\r\n`; a string ends at its closing quote; a block string at `"""` (not `\"""`).
//!
//! Where the reading could differ from the parser's, it errs on the side of counting:
//!
//! - an unterminated string ends at the line terminator, where the parser stops too;
//! - a block string with no closing `"""` is, to the parser (a PEG), the empty string
//!   `""` followed by a string starting at the third quote, so it is read that way here.
//!
//! Counting a bracket the parser would skip only refuses an odd document; skipping one the
//! parser reads would let the process abort, so every doubt is resolved by counting.

/// The deepest nesting of `{`, `[` and `(` outside strings and comments.
pub(super) fn nesting(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    // Multi-byte UTF-8 sequences contain no ASCII bytes, so stepping through bytes and
    // matching ASCII delimiters reads the same tokens as stepping through characters.
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                match block_string_end(bytes, i + 3) {
                    Some(end) => i = end,
                    // Unterminated: `""`, then a string from the third quote on.
                    None => i += 2,
                }
                continue;
            }
            b'"' => {
                i = string_end(bytes, i + 1);
                continue;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Where a block string whose content starts at `start` ends (after its closing `"""`),
/// if it has one. Inside a block string only `\"""` is an escape.
fn block_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Where a string whose content starts at `start` ends: after its closing quote, or at a
/// line terminator (which a string may not hold: the parser stops there, and so does the
/// string here, so that what follows is counted).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            b'\\' if i + 1 < bytes.len() && !matches!(bytes[i + 1], b'\n' | b'\r') => i += 2,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_count_outside_strings_and_comments() {
        assert_eq!(nesting("{ a { b(x: [1, [2]]) } }"), 5);
        assert_eq!(nesting("{ a(s: \"{{{{\\\"{{\") # {{{{\n }"), 2);
        assert_eq!(nesting("{ a(s: \"\"\" {{{{ \"\"\") }"), 2);
        assert_eq!(nesting(&"[".repeat(50_000)), 50_000);
    }

    #[test]
    fn comments_end_at_every_line_terminator() {
        for terminator in ["\n", "\r", "\r\n"] {
            let document = format!("{{ a # {{{{{{ {terminator} b {{ c }} }}");
            assert_eq!(nesting(&document), 2, "{terminator:?}");
        }
        // The trick that hid brackets: a comment ended by `\r` alone.
        let hidden = format!(
            "{{ user(id: #\r{}1{}) {{ id }} }}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(nesting(&hidden), 102);
    }

    #[test]
    fn strings_end_where_the_parser_ends_them() {
        // A string may not span lines: what follows the line break is counted.
        assert_eq!(nesting("{ a(s: \"abc\n[[[ ]]] ) }"), 5);
        assert_eq!(nesting("{ a(s: \"abc\r[[[ ]]] ) }"), 5);
        // An escaped quote does not end a string; an escaped backslash does not escape.
        assert_eq!(nesting(r#"{ a(s: "\"[[[") }"#), 2);
        assert_eq!(nesting(r#"{ a(s: "\\", t: [[[1]]]) }"#), 5);
        // In a block string only \""" escapes; a lone backslash is a character.
        assert_eq!(nesting(r#"{ a(s: """ \""" [[[ """) }"#), 2);
        assert_eq!(nesting(r#"{ a(s: """\\""" t: [[[1]]]) }"#), 5);
    }

    #[test]
    fn an_unterminated_block_string_is_read_as_the_parser_reads_it() {
        // No closing `"""`: the parser reads `""` then the string `"abc"`, then the lists.
        let document = format!(
            "{{ a(s: [\"\"\"abc\" {}1{}]) }}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(nesting(&document), 203);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::nesting;

        /// Characters that start or end comments and strings, and brackets.
        fn soup() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("#"),
                    Just("\""),
                    Just("\"\"\""),
                    Just("\\"),
                    Just("\\\"\"\""),
                    Just("\n"),
                    Just("\r"),
                    Just("\r\n"),
                    Just("["),
                    Just("]"),
                    Just("{"),
                    Just("}"),
                    Just(" "),
                    Just("a"),
                    Just("\\u0041"),
                    Just("é"),
                ],
                0..12,
            )
            .prop_map(|parts| parts.concat())
        }

        /// Text with no line terminator and no quote or backslash.
        fn plain() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("["),
                    Just("]"),
                    Just("{"),
                    Just("#"),
                    Just(" "),
                    Just("x"),
                    Just("é")
                ],
                0..8,
            )
            .prop_map(|parts| parts.concat())
        }

        /// Something a list may hold before its last element, or that the lexer skips:
        /// comments with every line terminator, strings and block strings with their
        /// escapes, an unterminated block string (read as `""` then a string).
        fn item() -> impl Strategy<Value = String> {
            let terminator = prop_oneof![Just("\n"), Just("\r"), Just("\r\n")];
            prop_oneof![
                (plain(), terminator).prop_map(|(text, end)| format!("#{text}{end}")),
                plain().prop_map(|text| format!("\"{text}\\\"\\\\\\u0041\"")),
                (plain(), plain()).prop_map(|(a, b)| format!("\"\"\"{a}\\\"\"\"{b}\"\"{a}\"\"\"")),
                plain().prop_map(|text| format!("\"\"\"{text}\"")),
                Just("1".to_owned()),
                Just(", ".to_owned()),
                Just("\u{feff}".to_owned()),
            ]
        }

        /// A document whose parse goes 1,600 levels deep once the parser reaches the
        /// bomb, placed after `items` or after a soup. Either the guard sees the bomb, or
        /// the parser never reaches it; were the guard fooled, the parse below would
        /// overflow its stack and abort the test run.
        fn documents() -> impl Strategy<Value = String> {
            let bomb = 1_600;
            let deep = move || format!("{}1{}", "[".repeat(bomb), "]".repeat(bomb));
            prop_oneof![
                proptest::collection::vec(item(), 0..10).prop_map(move |items| {
                    format!("{{ user(id: [{} {}]) {{ id }} }}", items.concat(), deep())
                }),
                proptest::collection::vec(item(), 0..10).prop_map(move |items| {
                    format!(
                        "query($a: [Int] = [{} {}]) {{ viewer {{ id }} }}",
                        items.concat(),
                        deep()
                    )
                }),
                soup().prop_map(move |soup| format!("{{ user(id: {soup} {}) {{ id }} }}", deep())),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn the_parser_never_goes_deeper_than_the_guard_allows(document in documents()) {
                if nesting(&document) <= crate::graphql::limits::RECURSION_LIMIT {
                    // A thread with a small stack: a hidden bomb would overflow it.
                    let parsed = std::thread::Builder::new()
                        .stack_size(1024 * 1024)
                        .spawn(move || async_graphql::parser::parse_query(&document).is_ok())
                        .expect("a thread")
                        .join();
                    prop_assert!(parsed.is_ok());
                }
            }
        }
    }
}
