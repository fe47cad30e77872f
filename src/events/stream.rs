//! `GET /v1/events/stream`: the feed as Server-Sent Events, resumable with `Last-Event-ID`.
//!
//! Why not "every event with id > last": ids are taken when a row is inserted, but rows
//! become visible when their transaction commits. Transaction A takes id 10, B takes id 11,
//! B commits, a reader sends 11 and remembers it, then A commits: "id > 11" never sends 10.
//!
//! What the stream does instead: every event row records its writer's transaction id
//! (`xid`, a 64-bit `xid8`, never wraps). A reader first takes the snapshot's `xmin`: every
//! transaction with an id below it has ended, so the set of events with `xid < xmin` is
//! final: no row can join it later. The stream only sends events from that final set, in
//! `(xid, id)` order, and its position is the `(xid, id)` of the last one it sent (or
//! `(xmin, 0)` once it has read everything below `xmin`). Whatever commits later has an
//! `xid >= xmin` and so sorts after the position: no gap, no duplicate. `Last-Event-ID`
//! carries the event id; the reader looks its `xid` up and resumes from that position.
//!
//! The price: an event waits until every transaction that was running when it committed
//! has ended. xids are cluster-wide, so a long transaction anywhere on the control DB's
//! server (a migration of a tenant database on the same server, say) delays the stream by
//! its length; it never loses or reorders anything.
//!
//! Per client: one producer task reads at most [`BATCH`] rows at a time from the pool
//! (no connection is held between reads) into a channel of [`BUFFER`] messages, so a slow
//! client costs a bounded amount of memory; it wakes on `drover_events` notifications and
//! polls every [`POLL`] regardless. Heartbeats are SSE comments (axum's keep-alive). The
//! number of clients per replica is capped by a semaphore (`stream_max_clients`), and the
//! number one token holds open by [`PerHolder`] (`stream_max_per_token`).
//!
//! A stream lasts only as long as what let it in: every [`RECHECK`] (and before sending,
//! once that much time has passed) the producer asks its [`Holder`] (the token, or the
//! console session, as the caller built it) whether it is still good, and ends the stream
//! when it is not: revoked, expired, logged out. A holder that cannot tell (the control DB
//! does not answer) keeps the stream; the stream cannot read events then either.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;

use super::feed::{branch_select, conditions, merge, where_clause, Query};
use super::{Event, EventsError, Filter, Source};

/// Rows read per query.
pub const BATCH: i64 = 200;
/// Messages buffered per client.
pub const BUFFER: usize = 64;
/// Longest wait between two reads when no notification arrives.
pub const POLL: Duration = Duration::from_secs(1);
/// How often a stream asks whether its token or session is still good: a revoked one's
/// stream ends within 2 s.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What let a stream in, asked again every [`RECHECK`] while it lasts.
pub trait Holder: Send + 'static {
    /// `false`: revoked, expired or logged out; the stream ends. When it cannot tell, it
    /// answers `true`.
    fn still_allowed(&mut self) -> impl Future<Output = bool> + Send;
}

/// The holder's answer, asked again only once [`RECHECK`] has passed since the last time.
struct Rechecked<H> {
    holder: H,
    next: tokio::time::Instant,
}

impl<H: Holder> Rechecked<H> {
    async fn still_allowed(&mut self) -> bool {
        if tokio::time::Instant::now() < self.next {
            return true;
        }
        let ok = self.holder.still_allowed().await;
        self.next = tokio::time::Instant::now() + RECHECK;
        ok
    }
}

/// A stream position: everything up to and including `(xid, id)` was considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    xid: u64,
    id: i64,
}

fn parse_xid(s: &str) -> Result<u64, EventsError> {
    s.parse().map_err(|_| EventsError::Invalid {
        field: "xid",
        message: format!("unexpected transaction id {s:?}"),
    })
}

/// Where a new stream without `Last-Event-ID` starts: at events not yet final.
pub async fn start(client: &impl GenericClient) -> Result<Position, EventsError> {
    Ok(Position {
        xid: xmin(client).await?,
        id: 0,
    })
}

/// The position of an event a client saw (`Last-Event-ID`).
pub async fn position_of(client: &impl GenericClient, id: i64) -> Result<Position, EventsError> {
    const SQL: &str = "SELECT xid::text AS xid FROM control_plane.tenant_events WHERE id = $1 \
         UNION ALL SELECT xid::text FROM control_plane.wave_events WHERE id = $1 \
         UNION ALL SELECT xid::text FROM control_plane.control_events WHERE id = $1";
    let row = client.query_opt(SQL, &[&id]).await?;
    let row = row.ok_or_else(|| EventsError::Invalid {
        field: "Last-Event-ID",
        message: format!("no event {id}"),
    })?;
    Ok(Position {
        xid: parse_xid(row.try_get("xid")?)?,
        id,
    })
}

async fn xmin(client: &impl GenericClient) -> Result<u64, EventsError> {
    const SQL: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin";
    parse_xid(client.query_one(SQL, &[]).await?.try_get("xmin")?)
}

/// The next final events after `after` matching `filter`, and the position to read from
/// next time.
pub async fn read(
    client: &impl GenericClient,
    filter: &Filter,
    after: Position,
) -> Result<(Vec<Event>, Position), EventsError> {
    // Taken before the read: a transaction below it has ended, so its rows are visible to
    // the (later) snapshot of the read as well.
    let xmin = xmin(client).await?;
    let mut q = Query::default();
    let limit = q.bind(BATCH);
    let (px, pi, xm) = (
        q.bind(after.xid.to_string()),
        q.bind(after.id),
        q.bind(xmin.to_string()),
    );
    let mut branches = Vec::new();
    for source in Source::ALL {
        let Some(mut conds) = conditions(&mut q, source, filter) else {
            continue;
        };
        conds.push(format!("(e.xid, e.id) > ({px}::text::xid8, {pi})"));
        conds.push(format!("e.xid < {xm}::text::xid8"));
        branches.push(format!(
            "{}{} ORDER BY e.xid, e.id LIMIT {limit}",
            branch_select(source),
            where_clause(&conds)
        ));
    }
    // A filter both sources exclude (a wave type and a tenant) matches nothing.
    let rows = if branches.is_empty() {
        Vec::new()
    } else {
        let sql = merge(&branches, "u.xid::xid8, u.id", &limit);
        client.query(sql.as_str(), &q.params()).await?
    };
    let mut events = Vec::with_capacity(rows.len());
    let mut last = after;
    for r in &rows {
        events.push(Event::from_row(r)?);
        last = Position {
            xid: parse_xid(r.try_get("xid")?)?,
            id: r.try_get("id")?,
        };
    }
    let next = if (rows.len() as i64) < BATCH {
        // Everything below xmin was read: skip past it, filtered-out rows included.
        last.max(Position { xid: xmin, id: 0 })
    } else {
        last
    };
    Ok((events, next))
}

/// One SSE message for an event.
pub fn message(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    SseEvent::default()
        .id(e.id.to_string())
        .event(e.event_type.clone())
        .data(data)
}

/// Feeds `tx` until the client goes away, `stop` fires or `holder` is no longer good.
/// `guard` is the client's slot; it is released when this returns.
#[allow(clippy::too_many_arguments)]
pub async fn produce<G, H: Holder>(
    pool: Pool,
    wake: super::notify::Wake,
    filter: Filter,
    mut at: Position,
    tx: mpsc::Sender<SseEvent>,
    stop: CancellationToken,
    guard: G,
    holder: H,
) {
    let _guard = guard;
    let mut woken = wake.subscribe();
    let mut holder = Rechecked {
        holder,
        next: tokio::time::Instant::now() + RECHECK,
    };
    loop {
        if !holder.still_allowed().await {
            return;
        }
        let read_once = async {
            let client = pool.get().await.map_err(EventsError::from)?;
            read(&**client, &filter, at).await
        };
        let more = match read_once.await {
            Ok((events, next)) => {
                let full = events.len() as i64 >= BATCH;
                for e in &events {
                    // A client slow to read may hold this send past a revocation.
                    if !holder.still_allowed().await || tx.send(message(e)).await.is_err() {
                        return;
                    }
                }
                at = next;
                full
            }
            Err(e) => {
                tracing::warn!(error = %e, "event stream read failed; retrying");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = woken.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::time::sleep_until(holder.next) => {}
            _ = tx.closed() => return,
            _ = stop.cancelled() => return,
        }
    }
}

/// Streams open per holder (a token's identity, `token:<name>` or `root`) on this
/// replica, each at most `max`.
pub struct PerHolder {
    open: Arc<Mutex<HashMap<String, usize>>>,
    max: usize,
}

impl PerHolder {
    /// At most `max` streams per holder.
    pub fn new(max: usize) -> Self {
        PerHolder {
            open: Arc::new(Mutex::new(HashMap::new())),
            max,
        }
    }

    /// Counts one more stream for `who`, or says it holds `max` already.
    fn take(&self, who: &str) -> Result<HolderSlot, EventsError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(who.to_string()).or_insert(0);
        if *n >= self.max {
            return Err(EventsError::TooManyStreamsForToken(self.max));
        }
        *n += 1;
        Ok(HolderSlot {
            open: self.open.clone(),
            who: who.to_string(),
        })
    }
}

/// One of a holder's streams; given back when dropped.
struct HolderSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    who: String,
}

impl Drop for HolderSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

/// A client's slots (its holder's and the replica's), counted in the stream gauge for as
/// long as it lives.
pub struct ClientGuard {
    _holder: HolderSlot,
    _permit: tokio::sync::OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl ClientGuard {
    /// Takes one of `who`'s slots and one of the replica's, or says which is full.
    pub fn acquire(
        events: &super::Events,
        who: &str,
        gauge: prometheus::IntGauge,
    ) -> Result<ClientGuard, EventsError> {
        let holder = events.per_holder.take(who)?;
        let permit = events
            .streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| EventsError::TooManyStreams(events.max_streams))?;
        gauge.inc();
        Ok(ClientGuard {
            _holder: holder,
            _permit: permit,
            gauge,
        })
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_share_of_streams_and_the_next_once_one_closes() {
        let per = PerHolder::new(2);
        let a1 = per.take("token:a").unwrap();
        let _a2 = per.take("token:a").unwrap();
        let refused = per.take("token:a");
        let other = per.take("token:b");
        drop(a1);
        let again = per.take("token:a");

        assert!(matches!(
            refused,
            Err(EventsError::TooManyStreamsForToken(2))
        ));
        assert!(other.is_ok(), "another token has its own share");
        assert!(again.is_ok(), "a closed stream gives its slot back");
    }
}
