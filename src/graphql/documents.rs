//! Parsed documents, kept for the query texts clients send again and again.
//!
//! Apps send a handful of fixed operations, each as the same text every time, and
//! parsing was a tenth of what a small query cost the server. The first request with a
//! text parses it; the next ones take a copy of the parsed document. Only documents
//! within the limits are kept, and only short ones, so what the cache holds stays
//! bounded in memory whatever clients send: at most [`ENTRIES`] texts, [`BYTES`] of text
//! in all (a parsed document takes up to some hundred times its text). When full, the
//! texts kept longest make room.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use async_graphql::parser::types::ExecutableDocument;

/// Texts kept at most.
const ENTRIES: usize = 256;
/// The text kept at most, all texts together, in bytes.
const BYTES: usize = 128 * 1024;
/// The longest text kept, in bytes: the canonical operations are a few hundred.
const LONGEST: usize = 4 * 1024;

/// The parsed documents of recent query texts.
#[derive(Default)]
pub(crate) struct Documents(Mutex<Kept>);

#[derive(Default)]
struct Kept {
    documents: HashMap<Arc<str>, Arc<ExecutableDocument>>,
    /// The texts kept, oldest first.
    order: VecDeque<Arc<str>>,
    /// Their length, together.
    bytes: usize,
}

impl Documents {
    /// The parsed document of `text`, if it is kept.
    pub(crate) fn get(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.documents.get(text).cloned()
    }

    /// Keeps `document`, the parse of `text`, if `text` is short enough.
    pub(crate) fn keep(&self, text: &str, document: Arc<ExecutableDocument>) {
        if text.len() > LONGEST {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.documents.contains_key(text) {
            return;
        }
        while kept.order.len() >= ENTRIES || kept.bytes + text.len() > BYTES {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            kept.bytes -= oldest.len();
            kept.documents.remove(&oldest);
        }
        let text: Arc<str> = Arc::from(text);
        kept.bytes += text.len();
        kept.order.push_back(text.clone());
        kept.documents.insert(text, document);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Arc<ExecutableDocument> {
        Arc::new(async_graphql::parser::parse_query(text).expect("a valid document"))
    }

    #[test]
    fn keeps_at_most_its_bound_and_lets_the_oldest_go_first() {
        let documents = Documents::default();
        let texts: Vec<String> = (0..=ENTRIES)
            .map(|i| format!("{{ a{i}: __typename }}"))
            .collect();
        for text in &texts {
            documents.keep(text, parsed(text));
        }
        assert!(documents.get(&texts[0]).is_none(), "the oldest made room");
        assert!(documents.get(&texts[1]).is_some());
        assert!(documents.get(&texts[ENTRIES]).is_some());
        let kept = documents.0.lock().expect("not poisoned");
        assert_eq!(kept.documents.len(), ENTRIES);
        assert_eq!(kept.order.len(), ENTRIES);
    }

    #[test]
    fn keeps_at_most_its_bytes() {
        let documents = Documents::default();
        let texts: Vec<String> = (0..BYTES / 2048 + 1)
            .map(|i| format!("{{ a{i}: __typename }}{}", " ".repeat(2000)))
            .collect();
        for text in &texts {
            documents.keep(text, parsed(text));
        }
        let kept = documents.0.lock().expect("not poisoned");
        assert!(kept.bytes <= BYTES);
        assert_eq!(
            kept.bytes,
            kept.order.iter().map(|t| t.len()).sum::<usize>()
        );
        assert!(kept.documents.len() < texts.len(), "the oldest made room");
        drop(kept);
        assert!(documents.get(texts.last().expect("one")).is_some());
    }

    #[test]
    fn does_not_keep_long_texts() {
        let documents = Documents::default();
        let text = format!("{{ __typename }}{}", " ".repeat(LONGEST));
        documents.keep(&text, parsed(&text));
        assert!(documents.get(&text).is_none());
    }
}
