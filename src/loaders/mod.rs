//! Per-request DataLoaders: entity loaders (`BatchGetItem`) and page loaders (GSI `Query`).
//!
//! A fresh [`Loaders`] is built for every GraphQL request, so its caches never cross
//! users or requests. Within a request, everything a loader has seen (an entity, or an
//! item of a page) is cached: asking again costs no DynamoDB request.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use futures::{
    FutureExt, StreamExt, TryStreamExt,
    future::{BoxFuture, try_join_all},
};
use tracing::Instrument;

use crate::{
    domain::{Comment, CommentId, Post, PostId, User, UserId},
    error::AppError,
    storage::{Found, Page, Storage, TimeRange, Window},
};

/// Matches `BatchGetItem`'s limit, so each batch is one request.
const MAX_BATCH: usize = 100;

/// A page request: whose list, which part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageRequest<P> {
    /// The id the list belongs to.
    pub parent: P,
    /// Which items: how many, from where, which way, within which time range.
    pub window: Window,
}

/// A count request: whose list, within which time range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CountRequest<P> {
    /// The id the list belongs to.
    pub parent: P,
    /// The range counted (everything, for a counter to read or make).
    pub range: TimeRange,
}

/// One request's DataLoaders: every id and every page it asks for, batched and cached.
pub struct Loaders {
    storage: Storage,
    /// When a request's batches go out; `None` for an event's loaders, which go after
    /// [`EVENT_DELAY`].
    dispatch: Option<Arc<Dispatch>>,
    /// Users, posts and comments by id (the DataLoader keeps one batch per key type).
    entities: DataLoader<Entities, HashMapCache>,
    /// Pages of `user.posts` and `post.comments`, and their counts.
    pages: DataLoader<Pages, HashMapCache>,
}

/// How long an event's loaders wait for more keys before they send a batch. Every
/// subscriber of the instance shares them: their resolvers start together when the event
/// arrives, but a few hundred of them take a few milliseconds to all ask, and each that
/// comes after a batch left would send another. (A request's loaders wait for no clock:
/// see [`Dispatch`].)
const EVENT_DELAY: Duration = Duration::from_millis(10);
/// The most DynamoDB requests one event may cause on an instance, for all its
/// subscriptions together. Shared loads make the usual event cost one or two; the budget
/// bounds what distinct selections could add, however many subscribers make them.
pub const EVENT_BUDGET: usize = 100;

/// DynamoDB requests left to spend; `None`, no limit.
#[derive(Clone, Default)]
struct Budget(Option<Arc<AtomicUsize>>);

impl Budget {
    fn spend(&self, requests: usize) -> Result<(), AppError> {
        let Some(left) = &self.0 else {
            return Ok(());
        };
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(requests)
        })
        .map(|_| ())
        .map_err(|_| {
            AppError::QueryTooComplex(format!(
                "this event needed more than the {EVENT_BUDGET} DynamoDB reads one event may \
                 take on this server; select fewer or smaller connections in subscriptions"
            ))
        })
    }
}

impl Loaders {
    /// Loaders for one request. Their batches go out when [`Loaders::run`] sees the
    /// request wait.
    pub fn new(storage: Storage) -> Self {
        let dispatch = Arc::new(Dispatch::default());
        let queue = dispatch.clone();
        Self::with(
            storage,
            Duration::ZERO,
            Budget::default(),
            Some(dispatch),
            move |batch| {
                queue.queue(batch);
            },
        )
    }

    /// Loaders for one event, shared by every subscription that resolves it (see
    /// `graphql::subscription::EventLoaders`), within [`EVENT_BUDGET`].
    pub fn for_events(storage: Storage) -> Self {
        let budget = Budget(Some(Arc::new(AtomicUsize::new(EVENT_BUDGET))));
        Self::with(storage, EVENT_DELAY, budget, None, |batch| {
            tokio::spawn(batch);
        })
    }

    fn with(
        storage: Storage,
        delay: Duration,
        budget: Budget,
        dispatch: Option<Arc<Dispatch>>,
        start: impl Fn(BoxFuture<'static, ()>) + Clone + Send + Sync + 'static,
    ) -> Self {
        fn loader<T: Send + Sync + 'static>(
            source: T,
            delay: Duration,
            start: impl Fn(BoxFuture<'static, ()>) + Send + Sync + 'static,
        ) -> DataLoader<T, HashMapCache> {
            // When traces are exported, a batch runs in a span that is a child of the
            // resolver that sent it (the operation's): its DynamoDB calls belong to the
            // request's trace. Otherwise no span: nothing would read it.
            let spawn = move |batch: BoxFuture<'static, ()>| {
                if crate::telemetry::tracing() {
                    let span = tracing::info_span!(
                        "dataloader",
                        otel.name = "DataLoader batch",
                        loader = tracing::field::Empty,
                        keys = tracing::field::Empty,
                    );
                    start(batch.instrument(span).boxed());
                } else {
                    start(batch);
                }
            };
            DataLoader::with_cache(source, spawn, HashMapCache::default())
                .max_batch_size(MAX_BATCH)
                .delay(delay)
        }
        Self {
            entities: loader(
                Entities(storage.clone(), budget.clone()),
                delay,
                start.clone(),
            ),
            pages: loader(Pages(storage.clone(), budget), delay, start),
            storage,
            dispatch,
        }
    }

    /// Runs a request's execution (`work`, which resolves through these loaders).
    ///
    /// Its batches go out level by level, with no clock: whenever `work` waits (every
    /// resolver that could run has run and asked for what it needs) and none of its
    /// batches is still out, every batch asked for goes out at once. A level's keys are
    /// all known by then, so each batch is as large as it can be; and a batch waits for
    /// no timer, only for the level before it.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        match &self.dispatch {
            Some(dispatch) => dispatch.run(work).await,
            None => work.await,
        }
    }

    /// The storage handle of this request (its requests are counted with the loaders').
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// A user by id, batched with the request's other lookups.
    pub async fn user(&self, id: &UserId) -> Result<Option<User>, AppError> {
        self.entities.load_one(id.clone()).await
    }

    /// A post by id, batched with the request's other lookups.
    pub async fn post(&self, id: &PostId) -> Result<Option<Post>, AppError> {
        self.entities.load_one(id.clone()).await
    }

    /// A comment by id, batched with the request's other lookups.
    pub async fn comment(&self, id: &CommentId) -> Result<Option<Comment>, AppError> {
        self.entities.load_one(id.clone()).await
    }

    /// What each of `ids` names in any table (see [`Storage::nodes`]), in order, `None`
    /// for an unknown id: batched with the request's other lookups of ids, and cached
    /// for `user(id)`, `post(id)` and `comment(id)`.
    pub async fn nodes(&self, ids: &[String]) -> Result<Vec<Option<Found>>, AppError> {
        let keys: Vec<NodeId> = ids.iter().cloned().map(NodeId).collect();
        let found = self.entities.load_many(keys.iter().cloned()).await?;
        let mut users = Vec::new();
        let mut posts = Vec::new();
        let mut comments = Vec::new();
        for node in found.values() {
            match node {
                Found::User(user) => users.push(user.clone()),
                Found::Post(post) => posts.push(post.clone()),
                Found::Comment(comment) => comments.push((comment.id.clone(), comment.clone())),
            }
        }
        self.prime_users(users).await;
        self.prime_posts(posts).await;
        self.entities.feed_many(comments).await;
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    /// How many posts a user has within `range`: a count on the index, or, for all of
    /// them, the count that makes a missing counter. Asked once per request (or event)
    /// whatever asks again, within the event's budget.
    pub async fn count_posts_of_user(
        &self,
        request: CountRequest<UserId>,
    ) -> Result<i64, AppError> {
        Ok(self.pages.load_one(request).await?.unwrap_or(0))
    }

    /// How many comments a post has within `range`: a count on the index, or, for all of
    /// them, the count that makes a missing counter.
    pub async fn count_comments_of_post(
        &self,
        request: CountRequest<PostId>,
    ) -> Result<i64, AppError> {
        Ok(self.pages.load_one(request).await?.unwrap_or(0))
    }

    /// A page of a user's posts, newest first; its posts are cached for `post(id)`.
    pub async fn posts_of_user(
        &self,
        request: PageRequest<UserId>,
    ) -> Result<Arc<Page<Post>>, AppError> {
        let page = self
            .pages
            .load_one(request)
            .await?
            .ok_or_else(missing_page)?;
        let posts: Vec<Post> = page.items.iter().map(|(_, p)| p.clone()).collect();
        self.prime_posts(posts).await;
        Ok(page)
    }

    /// A page of a post's comments, oldest first; its comments are cached for `comment(id)`.
    pub async fn comments_of_post(
        &self,
        request: PageRequest<PostId>,
    ) -> Result<Arc<Page<Comment>>, AppError> {
        let page = self
            .pages
            .load_one(request)
            .await?
            .ok_or_else(missing_page)?;
        let comments: Vec<(CommentId, Comment)> = page
            .items
            .iter()
            .map(|(_, c)| (c.id.clone(), c.clone()))
            .collect();
        self.entities.feed_many(comments).await;
        Ok(page)
    }

    /// A page of all users; its users are cached for `user(id)`.
    pub async fn users(&self, window: &Window) -> Result<Page<User>, AppError> {
        let page = self.storage.users().list(window).await?;
        let users: Vec<User> = page.items.iter().map(|(_, u)| u.clone()).collect();
        self.prime_users(users).await;
        Ok(page)
    }

    /// Users read by other means (a page of them), cached so that a lookup by id costs
    /// nothing.
    pub async fn prime_users(&self, users: Vec<User>) {
        self.entities
            .feed_many(users.into_iter().map(|u| (u.id.clone(), u)))
            .await;
    }

    /// Posts read by other means, cached so that a lookup by id costs nothing.
    pub async fn prime_posts(&self, posts: Vec<Post>) {
        self.entities
            .feed_many(posts.into_iter().map(|p| (p.id.clone(), p)))
            .await;
    }
}

/// The batches of one request: queued as its resolvers ask, and run by [`Loaders::run`]
/// within the request's own task (no task to spawn, no thread to hand over to: a
/// request's work and its batches never run apart).
struct Dispatch(std::sync::Mutex<Vec<BoxFuture<'static, ()>>>, Duration);

impl Default for Dispatch {
    fn default() -> Self {
        Self::holding(HOLD)
    }
}

impl Dispatch {
    /// A dispatch whose queued batches wait at most `hold` for the batches out.
    fn holding(hold: Duration) -> Self {
        Self(std::sync::Mutex::default(), hold)
    }

    fn queue(&self, batch: BoxFuture<'static, ()>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(batch);
    }

    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Runs `work` and the batches it asks for. Whenever `work` waits and no batch is
    /// out, what it queued goes out; while a batch is out, what is queued waits for it
    /// (what it brings may ask for more of the same, which then joins the same batch),
    /// but never longer than its hold ([`HOLD`]).
    ///
    /// `work` "waits" when it returns `Pending` without having woken itself during the
    /// poll: async-graphql's sets of fields yield after polling some of their members
    /// (`FuturesUnordered` does, to be fair to other tasks), and then the members not yet
    /// polled have not asked for anything yet.
    async fn run<F: Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut out = futures::stream::FuturesUnordered::new();
        let woken = Arc::new(Woken::default());
        let mut hold: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        // Polls in a row in which `work` woke itself: bounded, so that a resolver that
        // only ever yields cannot hold its batches back.
        let mut yields = 0;
        std::future::poll_fn(|cx| {
            loop {
                // Batches first: what they answer, `work` reads next.
                while let Poll::Ready(Some(())) = out.poll_next_unpin(cx) {}
                woken.waker.register(cx.waker());
                woken.flag.store(false, Ordering::Release);
                let waker = futures::task::waker_ref(&woken);
                if let Poll::Ready(done) = work.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return Poll::Ready(done);
                }
                if woken.flag.swap(false, Ordering::AcqRel) && yields < MAX_YIELDS {
                    // Polled again at once: not every resolver has asked yet.
                    yields += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                yields = 0;
                if !out.is_empty() {
                    let queued = !self
                        .0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty();
                    if !queued {
                        hold = None;
                        return Poll::Pending;
                    }
                    let timer = hold.get_or_insert_with(|| Box::pin(tokio::time::sleep(self.1)));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                hold = None;
                let queued = self.take();
                if queued.is_empty() {
                    return Poll::Pending;
                }
                out.extend(queued);
            }
        })
        .await
    }
}

/// The longest a queued batch waits for the batches out before it: what the loaders'
/// timer used to wait for every batch. Only a query whose branches load at different
/// speeds meets it.
const HOLD: Duration = Duration::from_millis(1);

/// How many polls in a row a request's work may wake itself before its batches go out
/// all the same.
const MAX_YIELDS: u32 = 64;

/// Tells whether a request's work woke itself while it was polled, and passes every
/// wake on to the request's task.
#[derive(Default)]
struct Woken {
    flag: AtomicBool,
    waker: futures::task::AtomicWaker,
}

impl futures::task::ArcWake for Woken {
    fn wake_by_ref(woken: &Arc<Self>) {
        woken.flag.store(true, Ordering::Release);
        woken.waker.wake();
    }
}

fn missing_page() -> AppError {
    AppError::internal(anyhow::anyhow!(
        "a page loader returned no page for its key"
    ))
}

/// Loads entities by id with `BatchGetItem`. One type serves the three entity kinds.
pub struct Entities(Storage, Budget);

impl Loader<UserId> for Entities {
    type Value = User;
    type Error = AppError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, AppError> {
        batch("users", keys.len());
        self.1.spend(keys.len().div_ceil(MAX_BATCH))?;
        self.0.users().by_id(keys).await
    }
}

impl Loader<PostId> for Entities {
    type Value = Post;
    type Error = AppError;

    async fn load(&self, keys: &[PostId]) -> Result<HashMap<PostId, Post>, AppError> {
        batch("posts", keys.len());
        self.1.spend(keys.len().div_ceil(MAX_BATCH))?;
        self.0.posts().by_id(keys).await
    }
}

impl Loader<CommentId> for Entities {
    type Value = Comment;
    type Error = AppError;

    async fn load(&self, keys: &[CommentId]) -> Result<HashMap<CommentId, Comment>, AppError> {
        batch("comments", keys.len());
        self.1.spend(keys.len().div_ceil(MAX_BATCH))?;
        self.0.comments().by_id(keys).await
    }
}

/// An id of any table, for `node(id)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl Loader<NodeId> for Entities {
    type Value = Found;
    type Error = AppError;

    async fn load(&self, keys: &[NodeId]) -> Result<HashMap<NodeId, Found>, AppError> {
        batch("nodes", keys.len());
        // Three keys an id: one in each table.
        self.1.spend((keys.len() * 3).div_ceil(MAX_BATCH))?;
        let ids: Vec<String> = keys.iter().map(|key| key.0.clone()).collect();
        let found = self.0.nodes(&ids).await?;
        Ok(found
            .into_iter()
            .map(|(id, node)| (NodeId(id), node))
            .collect())
    }
}

/// Loads pages of a GSI: one `Query` per distinct (parent, size, after), run concurrently.
pub struct Pages(Storage, Budget);

async fn load_pages<P, T, F, Fut>(
    keys: &[PageRequest<P>],
    query: F,
) -> Result<HashMap<PageRequest<P>, Arc<Page<T>>>, AppError>
where
    P: Clone + Eq + Hash,
    F: Fn(PageRequest<P>) -> Fut,
    Fut: Future<Output = Result<Page<T>, AppError>>,
{
    let pages = try_join_all(keys.iter().map(|key| {
        let page = query(key.clone());
        async move { Ok::<_, AppError>((key.clone(), Arc::new(page.await?))) }
    }))
    .await?;
    Ok(pages.into_iter().collect())
}

impl Loader<PageRequest<UserId>> for Pages {
    type Value = Arc<Page<Post>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[PageRequest<UserId>],
    ) -> Result<HashMap<PageRequest<UserId>, Self::Value>, AppError> {
        batch("user_posts", keys.len());
        self.1.spend(keys.len())?;
        load_pages(keys, |k| async move {
            self.0.posts().of_user(&k.parent, &k.window).await
        })
        .await
    }
}

impl Loader<PageRequest<PostId>> for Pages {
    type Value = Arc<Page<Comment>>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[PageRequest<PostId>],
    ) -> Result<HashMap<PageRequest<PostId>, Self::Value>, AppError> {
        batch("post_comments", keys.len());
        self.1.spend(keys.len())?;
        load_pages(keys, |k| async move {
            self.0.comments().of_post(&k.parent, &k.window).await
        })
        .await
    }
}

/// Counts run at once: a page of posts written without counters asks for one each.
const COUNTS_AT_ONCE: usize = 8;

impl Pages {
    /// The counts of `keys`, for `loader` (its name in the metrics), a few at a time: each
    /// is a request or two (a count, and the counter it makes). They run as a task of their
    /// own: a count that makes a missing counter finishes (and the counter is made) even
    /// when the request that asked gives up first, as a long list's first count may take
    /// longer than a request may.
    async fn counts<P, F, Fut>(
        &self,
        loader: &'static str,
        keys: &[CountRequest<P>],
        count: F,
    ) -> Result<HashMap<CountRequest<P>, i64>, AppError>
    where
        P: Clone + Eq + Hash + Send + Sync + 'static,
        F: Fn(Storage, CountRequest<P>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64, AppError>> + Send + 'static,
    {
        batch(loader, keys.len());
        self.1.spend(count_cost(keys))?;
        let storage = self.0.clone();
        let keys = keys.to_vec();
        let counting = async move {
            let counts: Vec<_> = keys
                .into_iter()
                .map(|key| {
                    let counted = count(storage.clone(), key.clone());
                    async move { Ok::<_, AppError>((key, counted.await?)) }
                })
                .collect();
            futures::stream::iter(counts)
                .buffer_unordered(COUNTS_AT_ONCE)
                .try_collect()
                .await
        };
        tokio::spawn(counting.in_current_span())
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("a count failed: {e}")))?
    }
}

/// What a count may cost: the count, and the counter it makes for a whole list.
fn count_cost<P>(keys: &[CountRequest<P>]) -> usize {
    keys.iter()
        .map(|key| if key.range.is_everything() { 2 } else { 1 })
        .sum()
}

impl Loader<CountRequest<UserId>> for Pages {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CountRequest<UserId>],
    ) -> Result<HashMap<CountRequest<UserId>, i64>, AppError> {
        self.counts("user_post_counts", keys, |storage, k| async move {
            if k.range.is_everything() {
                storage.users().count_posts(&k.parent).await
            } else {
                storage.posts().count_of_user(&k.parent, &k.range).await
            }
        })
        .await
    }
}

impl Loader<CountRequest<PostId>> for Pages {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CountRequest<PostId>],
    ) -> Result<HashMap<CountRequest<PostId>, i64>, AppError> {
        self.counts("post_comment_counts", keys, |storage, k| async move {
            if k.range.is_everything() {
                storage.comments().count_comments(&k.parent).await
            } else {
                storage.comments().count_of_post(&k.parent, &k.range).await
            }
        })
        .await
    }
}

/// A batch of `size` keys of `loader`: counted in the metrics and named in its span.
fn batch(loader: &'static str, size: usize) {
    crate::metrics::batch(loader, size);
    let span = tracing::Span::current();
    span.record("loader", loader);
    span.record("keys", size);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::channel::oneshot;

    use super::*;

    /// A batch named `name` that notes when it starts, waits for `gate`, then answers.
    fn batch(
        started: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
        gate: oneshot::Receiver<()>,
        answer: oneshot::Sender<()>,
    ) -> BoxFuture<'static, ()> {
        let started = started.clone();
        async move {
            started.lock().expect("not poisoned").push(name);
            _ = gate.await;
            _ = answer.send(());
        }
        .boxed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_asked_for_while_another_is_out_goes_when_that_one_is_done() {
        // A hold longer than the test: only `a` being done can let `b` go.
        let dispatch = Arc::new(Dispatch::holding(Duration::from_secs(3600)));
        let started = Arc::new(Mutex::new(Vec::new()));
        let (open_a, gate_a) = oneshot::channel();
        let (finish, finish_a) = oneshot::channel::<()>();
        let (answer_a, a) = oneshot::channel();
        let (open_b, gate_b) = oneshot::channel();
        let (answer_b, b) = oneshot::channel();
        let (a_is_out, a_out) = oneshot::channel::<()>();
        _ = open_b.send(());
        // `a` is asked for first; `b` by another resolver once `a` is out.
        let a_batch = {
            let started = started.clone();
            async move {
                started.lock().expect("not poisoned").push("a");
                _ = a_is_out.send(());
                _ = gate_a.await;
                _ = answer_a.send(());
                // Answered, but not done yet (as when a batch records its figures).
                _ = finish_a.await;
            }
        };
        dispatch.queue(a_batch.boxed());
        let work = {
            let dispatch = dispatch.clone();
            let started = started.clone();
            async move {
                let later = async {
                    // Once `a` is out, asks for `b`.
                    _ = a_out.await;
                    dispatch.queue(batch(&started, "b", gate_b, answer_b));
                    _ = b.await;
                };
                let (answered, ()) = futures::join!(a, later);
                answered.expect("`a` answers");
            }
        };
        let running = tokio::spawn({
            let dispatch = dispatch.clone();
            async move { dispatch.run(work).await }
        });
        // `a` went out with no clock; `b` is not sent while `a` is out, even once `a`
        // has answered.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*started.lock().expect("not poisoned"), ["a"]);
        _ = open_a.send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*started.lock().expect("not poisoned"), ["a"]);
        // `a` is done after the work last waited: `b` goes out all the same.
        _ = finish.send(());
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the work ends once `a` is done and `b` is sent")
            .expect("no panic");
        assert_eq!(*started.lock().expect("not poisoned"), ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waits_for_a_slow_one_out_no_longer_than_the_hold() {
        let dispatch = Arc::new(Dispatch::holding(Duration::from_millis(50)));
        let started = Arc::new(Mutex::new(Vec::new()));
        let (a_is_out, a_out) = oneshot::channel::<()>();
        let (_never, gate_a) = oneshot::channel::<()>();
        let a_batch = {
            let started = started.clone();
            async move {
                started.lock().expect("not poisoned").push("a");
                _ = a_is_out.send(());
                // Out for as long as the test runs.
                _ = gate_a.await;
            }
        };
        dispatch.queue(a_batch.boxed());
        let (open_b, gate_b) = oneshot::channel();
        let (answer_b, b) = oneshot::channel();
        _ = open_b.send(());
        let work = {
            let dispatch = dispatch.clone();
            let started = started.clone();
            async move {
                _ = a_out.await;
                dispatch.queue(batch(&started, "b", gate_b, answer_b));
                b.await.expect("`b` answers");
            }
        };
        tokio::time::timeout(Duration::from_secs(5), dispatch.run(work))
            .await
            .expect("`b` went out while `a` was still out");
        assert_eq!(*started.lock().expect("not poisoned"), ["a", "b"]);
    }
}
