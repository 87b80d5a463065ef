//! Subscriptions: events from the tables' streams, resolved with loaders the whole
//! instance shares.

use std::sync::{Arc, Mutex};

use super::Result;
use async_graphql::{Context, ErrorExtensions, ID, Subscription as SubscriptionObject};
use futures::{Stream, StreamExt, stream};
use tokio::sync::{broadcast, watch};

use super::types::{Comment, Post};
use crate::{
    domain::{Event, PostId, UserId},
    error::AppError,
    error::ErrorCode,
    loaders::Loaders,
    storage::{EventFeed, Storage},
};

/// What subscriptions need from the server: its event feed, its shutdown signal, and the
/// loaders their events are resolved with.
#[derive(Clone)]
pub struct Live {
    /// The instance's events, read from the tables' streams.
    pub feed: EventFeed,
    /// Turns true when the server shuts down; subscriptions then end.
    pub shutdown: watch::Receiver<bool>,
    loaders: Arc<EventLoaders>,
}

impl Live {
    /// Subscriptions to `feed`, loading events through `storage`, until `shutdown` turns true.
    pub fn new(feed: EventFeed, storage: Storage, shutdown: watch::Receiver<bool>) -> Self {
        let loaders = Arc::new(EventLoaders {
            storage,
            feed: feed.clone(),
            current: Mutex::new(None),
        });
        Self {
            feed,
            shutdown,
            loaders,
        }
    }

    /// The loaders of the subscriptions' events, for their request data.
    pub fn loaders(&self) -> Arc<EventLoaders> {
        self.loaders.clone()
    }
}

/// Loaders shared by every subscription of the instance, renewed with each event.
///
/// Every subscriber resolves its own selection for an event, but all of them load
/// through the same loaders, so a user or a post that a hundred subscriptions select is
/// read once: an event's DynamoDB cost depends on what the subscriptions select, not on
/// how many there are. A new set of loaders (with an empty cache) starts with each event
/// the feed publishes, so nothing read for one event is served for a later one; the feed
/// counts an event before it sends it, so a subscriber always resolves an event with
/// loaders at least as new as the event.
pub struct EventLoaders {
    storage: Storage,
    feed: EventFeed,
    current: Mutex<Option<(u64, Arc<Loaders>)>>,
}

impl EventLoaders {
    /// The loaders of the latest event published, made afresh once a newer one is out.
    pub fn current(&self) -> Arc<Loaders> {
        let published = self.feed.published();
        // A poisoned lock only means another subscriber panicked while swapping: the
        // value inside is still a valid set of loaders.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*current {
            Some((generation, loaders)) if *generation == published => loaders.clone(),
            _ => {
                let loaders = Arc::new(Loaders::for_events(self.storage.clone()));
                *current = Some((published, loaders.clone()));
                loaders
            }
        }
    }
}

/// The subscription root: comments and posts added, edited and deleted, by this server
/// or by any other program writing the tables.
pub struct Subscription;

#[SubscriptionObject]
impl Subscription {
    /// Each new comment on the post, within a second of its write, in write order: written
    /// through any instance of this server or by any other program writing the table.
    async fn comment_added(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> Result<impl Stream<Item = Result<Comment, async_graphql::Error>> + use<>> {
        let post = PostId::parse(post_id.0)?;
        picked(ctx, move |event| match event {
            Event::CommentAdded(comment) if comment.post_id == post => Some(Comment(comment)),
            _ => None,
        })
    }

    /// Each edit of a comment of the post: the comment after the edit.
    async fn comment_updated(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> Result<impl Stream<Item = Result<Comment, async_graphql::Error>> + use<>> {
        let post = PostId::parse(post_id.0)?;
        picked(ctx, move |event| match event {
            Event::CommentUpdated(comment) if comment.post_id == post => Some(Comment(comment)),
            _ => None,
        })
    }

    /// Each comment of the post deleted (one by one, or with its post): the comment as it
    /// was.
    async fn comment_deleted(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> Result<impl Stream<Item = Result<Comment, async_graphql::Error>> + use<>> {
        let post = PostId::parse(post_id.0)?;
        picked(ctx, move |event| match event {
            Event::CommentDeleted(comment) if comment.post_id == post => Some(Comment(comment)),
            _ => None,
        })
    }

    /// Each new post, of one author or of everyone.
    async fn post_added(
        &self,
        ctx: &Context<'_>,
        author_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Post, async_graphql::Error>> + use<>> {
        let author = author_id.map(|id| UserId::parse(id.0)).transpose()?;
        picked(ctx, move |event| match event {
            Event::PostAdded(post) if author.as_ref().is_none_or(|a| &post.author_id == a) => {
                Some(Post(post))
            }
            _ => None,
        })
    }

    /// Each edit of the post's title or content: the post after the edit. A new or
    /// deleted comment (which moves `commentCount`) is no edit.
    async fn post_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<Post, async_graphql::Error>> + use<>> {
        let id = PostId::parse(id.0)?;
        picked(ctx, move |event| match event {
            Event::PostUpdated(post) if post.id == id => Some(Post(post)),
            _ => None,
        })
    }

    /// Each post deleted, of one author or of everyone: the post as it was.
    async fn post_deleted(
        &self,
        ctx: &Context<'_>,
        author_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Post, async_graphql::Error>> + use<>> {
        let author = author_id.map(|id| UserId::parse(id.0)).transpose()?;
        picked(ctx, move |event| match event {
            Event::PostDeleted(post) if author.as_ref().is_none_or(|a| &post.author_id == a) => {
                Some(Post(post))
            }
            _ => None,
        })
    }
}

/// The events `pick` keeps, as what it makes of them; errors of the feed pass through.
fn picked<T, F>(
    ctx: &Context<'_>,
    pick: F,
) -> Result<impl Stream<Item = Result<T, async_graphql::Error>> + use<T, F>>
where
    T: Send + 'static,
    F: Fn(Event) -> Option<T> + Send + 'static,
{
    Ok(events(ctx)?.filter_map(move |event| {
        std::future::ready(match event {
            Ok(event) => pick(event).map(Ok),
            Err(err) => Some(Err(err)),
        })
    }))
}

/// The instance's events for one subscription. It ends when the server shuts down, and
/// with an error when the subscriber falls so far behind that the feed dropped events
/// for it: a slow subscriber is let go rather than allowed to slow the others.
fn events(
    ctx: &Context<'_>,
) -> Result<impl Stream<Item = Result<Event, async_graphql::Error>> + use<>> {
    let live = ctx.data_opt::<Live>().ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "subscriptions are turned off on this server"
        ))
    })?;
    // Cut off from the engine (the scale-out mode), events pass this instance by: a
    // subscription would miss them without knowing.
    if !live.feed.connected() {
        return Err(AppError::unavailable(anyhow::anyhow!(
            "a subscription was refused: the event engine is out of reach"
        )));
    }
    let mut interrupted = live.feed.interruptions();
    interrupted.mark_unchanged();
    Ok(event_stream(
        live.feed.subscribe(),
        live.shutdown.clone(),
        interrupted,
    ))
}

fn unavailable(message: &str) -> async_graphql::Error {
    async_graphql::Error::new(message)
        .extend_with(|_, e| e.set("code", ErrorCode::ServiceUnavailable.as_str()))
}

/// The events of one subscription: it ends at shutdown, and with an error when the feed
/// drops events for it (it fell behind) or loses them (its engine out of reach).
fn event_stream(
    receiver: broadcast::Receiver<Event>,
    shutdown: watch::Receiver<bool>,
    interrupted: watch::Receiver<u64>,
) -> impl Stream<Item = Result<Event, async_graphql::Error>> + use<> {
    struct State {
        receiver: broadcast::Receiver<Event>,
        shutdown: watch::Receiver<bool>,
        interrupted: watch::Receiver<u64>,
        done: bool,
    }
    let state = State {
        receiver,
        shutdown,
        interrupted,
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let next = tokio::select! {
            // Events received before an interruption come before its error.
            biased;
            _ = state.shutdown.wait_for(|stop| *stop) => return None,
            received = state.receiver.recv() => Some(received),
            Ok(()) = state.interrupted.changed() => None,
        };
        let Some(next) = next else {
            state.done = true;
            let error = unavailable(
                "live events were interrupted (the server lost its event service), so this \
                 subscription may have missed some and was ended; subscribe again",
            );
            return Some((Err(error), state));
        };
        match next {
            Ok(event) => Some((Ok(event), state)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                state.done = true;
                crate::metrics::subscriber_dropped();
                let error = unavailable(&format!(
                    "this subscription fell {missed} events behind and was ended; subscribe again"
                ));
                Some((Err(error), state))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{Comment, CommentId};

    fn comment(i: usize) -> Event {
        Event::CommentAdded(Comment {
            id: CommentId::from_stored(format!("c{i}")),
            post_id: PostId::from_stored("p".into()),
            author_id: UserId::from_stored("u".into()),
            content: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        })
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_an_error_and_is_ended() {
        let (sender, receiver) = broadcast::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let (_interrupt, interrupted) = watch::channel(0);
        let events = event_stream(receiver, shutdown, interrupted);
        for i in 0..10 {
            sender.send(comment(i)).expect("a receiver");
        }
        let items: Vec<_> = events.collect().await;
        assert_eq!(items.len(), 1);
        let error = items[0].as_ref().expect_err("lagged");
        assert!(
            error.message.contains("fell 6 events behind"),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn an_interrupted_feed_ends_subscriptions_with_an_error_after_what_came_before() {
        let (sender, receiver) = broadcast::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let (interrupt, interrupted) = watch::channel(0);
        let events = event_stream(receiver, shutdown, interrupted);
        sender.send(comment(1)).expect("a receiver");
        interrupt.send_modify(|count| *count += 1);
        let items: Vec<_> = events.collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let error = items[1].as_ref().expect_err("interrupted");
        assert!(error.message.contains("interrupted"), "{}", error.message);
    }

    #[tokio::test]
    async fn subscriptions_end_when_the_server_shuts_down() {
        let (_sender, receiver) = broadcast::channel::<Event>(4);
        let (stop, shutdown) = watch::channel(false);
        let (_interrupt, interrupted) = watch::channel(0);
        let events = event_stream(receiver, shutdown, interrupted);
        stop.send(true).expect("a receiver");
        assert_eq!(events.count().await, 0);
    }
}
