use std::sync::Arc;
use std::time::Duration;

use policies::TenantName;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn tenant(name: &str) -> TenantName {
    TenantName::from(name)
}

/// Congests the gate until its limit is `MIN_LIMIT`.
fn congested(max: usize) -> Arc<FairGate> {
    let g = FairGate::new(max);
    for _ in 0..200 {
        g.observe_lag(Duration::from_millis(20));
    }
    assert_eq!(g.limit(), MIN_LIMIT);
    g
}

/// Fills the gate to its limit with `who`'s requests (after one request of
/// another tenant, so that the limit holds).
async fn fill(g: &Arc<FairGate>, who: &TenantName) -> Vec<FairPermit> {
    drop(g.enter(&tenant("someone else"), 1_000, WAIT).await);
    let mut held = Vec::new();
    for _ in 0..g.limit() {
        held.push(g.enter(who, 1_000, WAIT).await.expect("below the limit"));
    }
    held
}

#[tokio::test]
async fn below_the_limit_a_request_enters_at_once_and_past_it_waits_for_a_place() {
    let g = congested(64);
    let flood = tenant("flood");
    let mut held = fill(&g, &flood).await;
    assert_eq!(g.in_use(), g.limit());
    let g2 = g.clone();
    let waiting = tokio::spawn(async move { g2.enter(&tenant("flood"), 1_000, WAIT).await });
    tokio::task::yield_now().await;
    assert_eq!(g.queued(), 1);
    assert!(!waiting.is_finished());
    held.pop();
    let entered = waiting.await.expect("task");
    assert!(entered.is_ok(), "the freed place went to the waiter");
    assert_eq!(g.in_use(), g.limit());
}

#[tokio::test]
async fn a_quiet_tenant_under_its_share_enters_at_once_past_the_floods_backlog() {
    let g = congested(64);
    let flood = tenant("flood");
    let calm = tenant("calm");
    let mut held = fill(&g, &flood).await;
    let mut backlog = Vec::new();
    for _ in 0..20 {
        let g2 = g.clone();
        backlog.push(tokio::spawn(async move {
            g2.enter(&tenant("flood"), 1_000, WAIT).await
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(g.queued(), 20);
    // Three tenants were active (the one `fill` used too): calm's share is
    // a third of the limit, and it holds nothing.
    let first = tokio::time::timeout(Duration::from_millis(500), g.enter(&calm, 1_000, WAIT))
        .await
        .expect("no wait")
        .expect("entered");
    assert_eq!(g.in_use(), g.limit() + 1, "past the limit");
    // At its share, calm waits its turn like the flood: the places go to
    // the tenants in turn, flood (first in line), then calm.
    let g2 = g.clone();
    let second = tokio::spawn(async move { g2.enter(&tenant("calm"), 1_000, WAIT).await });
    tokio::task::yield_now().await;
    assert_eq!(g.queued(), 21);
    // The first place freed only brings the gate back to its limit; the
    // next goes to the flood, the one after to calm.
    held.pop();
    held.pop();
    tokio::task::yield_now().await;
    assert!(!second.is_finished());
    assert_eq!(backlog.iter().filter(|t| t.is_finished()).count(), 1);
    held.pop();
    let second = second.await.expect("task");
    assert!(second.is_ok(), "calm entered on the third place freed");
    tokio::task::yield_now().await;
    let entered_flood = backlog.iter().filter(|t| t.is_finished()).count();
    assert_eq!(entered_flood, 1, "one flood request entered before calm");
    drop(held);
    drop((first, second));
    for t in backlog {
        assert!(t.await.expect("task").is_ok());
    }
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_a_wait_past_the_timeout_refuses() {
    let g = congested(64);
    let flood = tenant("flood");
    let held = fill(&g, &flood).await;
    let g2 = g.clone();
    let first = tokio::spawn(async move { g2.enter(&tenant("flood"), 1, WAIT).await });
    tokio::task::yield_now().await;
    assert_eq!(
        g.enter(&flood, 1, WAIT).await.err(),
        Some(Refused::QueueFull)
    );
    // Calm's first request enters under its share; at its share the next
    // one waits, and gives up.
    let calm = g
        .enter(&tenant("calm"), 1, WAIT)
        .await
        .expect("under its share");
    assert_eq!(
        g.enter(&tenant("calm"), 1, Duration::from_millis(20))
            .await
            .err(),
        Some(Refused::Timeout)
    );
    drop(calm);
    let in_use = g.in_use();
    drop(held);
    assert!(first.await.expect("task").is_ok());
    assert!(g.in_use() < in_use, "the timed-out waiter took no place");
}

#[tokio::test]
async fn a_waiter_that_gave_up_does_not_block_the_next_request() {
    let g = congested(64);
    let flood = tenant("flood");
    let held = fill(&g, &flood).await;
    assert!(g
        .enter(&flood, 10, Duration::from_millis(10))
        .await
        .is_err());
    drop(held);
    // Its stale turn is skipped: the next request enters at once.
    let quick = tokio::time::timeout(Duration::from_millis(500), g.enter(&flood, 10, WAIT)).await;
    assert!(matches!(quick, Ok(Ok(_))));
}

#[tokio::test]
async fn the_limit_shrinks_under_delay_grows_back_while_requests_wait_and_resets_when_idle() {
    let g = FairGate::new(512);
    assert_eq!(g.limit(), 512, "an uncongested worker limits nobody");
    let who = tenant("t");
    drop(g.enter(&tenant("other"), 1_000, WAIT).await);
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(g.enter(&who, 1_000, WAIT).await.expect("enter"));
    }
    g.observe_lag(Duration::from_millis(10));
    let first = g.limit();
    assert!(first < 300, "it shrinks from what is in use ({first})");
    for _ in 0..100 {
        g.observe_lag(Duration::from_millis(10));
    }
    assert_eq!(g.limit(), MIN_LIMIT, "never below the minimum");
    // Requests wait, and the delay is back under the target: it grows.
    // (The other tenant is active again.)
    let _ = g
        .enter(&tenant("other"), 1_000, Duration::from_millis(1))
        .await;
    let g2 = g.clone();
    let waiting = tokio::spawn(async move { g2.enter(&tenant("t"), 1_000, WAIT).await });
    tokio::task::yield_now().await;
    for _ in 0..20 {
        g.observe_lag(Duration::from_micros(50));
    }
    assert!(g.limit() > MIN_LIMIT);
    drop(held);
    assert!(waiting.await.expect("task").is_ok());
    // Nobody waits and the places are free: back to the cap.
    g.observe_lag(Duration::from_micros(50));
    assert_eq!(g.limit(), 512);
}

#[tokio::test]
async fn a_short_spike_is_smoothed() {
    let g = FairGate::new(512);
    for _ in 0..20 {
        g.observe_lag(LAG_TARGET / 6);
    }
    g.observe_lag(LAG_TARGET * 5 / 2);
    assert_eq!(
        g.limit(),
        512,
        "one probe over the target is not congestion"
    );
}

#[tokio::test]
async fn a_tenant_alone_is_not_held_back_and_is_once_another_arrives() {
    let g = congested(64);
    let flood = tenant("flood");
    let mut held = Vec::new();
    for _ in 0..(MIN_LIMIT * 4) {
        held.push(g.enter(&flood, 1_000, WAIT).await.expect("alone: no limit"));
    }
    assert_eq!(g.in_use(), MIN_LIMIT * 4);
    // Another tenant arrives: it enters under its share (half the limit),
    // its next request waits for a place, and so does the flood.
    let share = g.limit() / 2;
    let mut first = Vec::new();
    for _ in 0..share {
        first.push(
            g.enter(&tenant("calm"), 1_000, WAIT)
                .await
                .expect("under its share"),
        );
    }
    let g2 = g.clone();
    let calm = tokio::spawn(async move { g2.enter(&tenant("calm"), 1_000, WAIT).await });
    tokio::task::yield_now().await;
    assert!(!calm.is_finished());
    assert!(
        g.enter(&flood, 1_000, Duration::from_millis(10))
            .await
            .is_err(),
        "over the limit with another tenant waiting"
    );
    // Once the other tenant has been quiet for the active window, the
    // flood is alone again.
    held.truncate(g.limit() - share - 1);
    assert!(calm.await.expect("task").is_ok());
    drop(first);
    for _ in 0..=ACTIVE_PROBES {
        g.observe_lag(Duration::from_millis(20));
    }
    assert!(g
        .enter(&flood, 1_000, Duration::from_millis(10))
        .await
        .is_ok());
}

#[tokio::test]
async fn once_the_other_tenant_is_gone_the_queue_left_behind_is_served() {
    let g = congested(64);
    let flood = tenant("flood");
    let held = fill(&g, &flood).await;
    let mut queued = Vec::new();
    for _ in 0..5 {
        let g2 = g.clone();
        queued.push(tokio::spawn(async move {
            g2.enter(&tenant("flood"), 1_000, WAIT).await
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(g.queued(), 5);
    // The other tenant (seen by `fill`) goes quiet: the flood is alone and
    // its queue is served whatever the limit.
    for _ in 0..=ACTIVE_PROBES {
        g.observe_lag(Duration::from_millis(20));
    }
    for q in queued {
        assert!(q.await.expect("task").is_ok());
    }
    drop(held);
}

#[tokio::test]
async fn a_wait_cancelled_after_its_place_was_given_gives_it_back() {
    let g = congested(64);
    let flood = tenant("flood");
    let mut held = fill(&g, &flood).await;
    let limit = g.limit();
    let g2 = g.clone();
    let waiting = tokio::spawn(async move { g2.enter(&tenant("flood"), 1_000, WAIT).await });
    tokio::task::yield_now().await;
    // A place is given to the waiter, and the waiting request is cancelled
    // before it sees it.
    held.pop();
    waiting.abort();
    let _ = waiting.await;
    assert!(
        g.in_use() < limit,
        "the place went back ({} in use)",
        g.in_use()
    );
}

/// The probe sees what a request waits for: an event loop held by other
/// tasks brings the limit down.
#[tokio::test(flavor = "current_thread")]
async fn the_probe_sees_a_busy_event_loop() {
    let g = FairGate::new(512);
    tokio::spawn(lag_probe(Arc::downgrade(&g)));
    // Twenty probe periods of an event loop held 5 ms at a time.
    let until = std::time::Instant::now() + PROBE_EVERY * 20;
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        tokio::task::yield_now().await;
    }
    assert_eq!(g.limit(), MIN_LIMIT);
}
