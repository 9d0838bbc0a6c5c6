use std::time::{Duration, Instant};

use super::IdleConnections;

const KEEP: Duration = Duration::from_secs(60);

fn alive(_: &mut u32) -> bool {
    true
}

#[test]
fn the_most_recently_returned_connection_is_taken_first() {
    let idle = IdleConnections::new(8, KEEP);
    let t = Instant::now();
    idle.put(1, t);
    idle.put(2, t);
    assert_eq!(idle.take(t, alive), Some(2));
    assert_eq!(idle.take(t, alive), Some(1));
    assert_eq!(idle.take(t, alive), None);
}

#[test]
fn a_full_set_lets_the_longest_idle_go() {
    let idle = IdleConnections::new(2, KEEP);
    let t = Instant::now();
    for c in 1..=3 {
        idle.put(c, t);
    }
    assert_eq!(idle.len(), 2);
    assert_eq!(idle.take(t, alive), Some(3));
    assert_eq!(idle.take(t, alive), Some(2));
    assert_eq!(idle.take(t, alive), None);
    let none = IdleConnections::new(0, KEEP);
    none.put(1, t);
    assert_eq!(none.len(), 0);
}

#[test]
fn unusable_and_expired_connections_are_dropped_when_taken() {
    let idle = IdleConnections::new(8, KEEP);
    let t = Instant::now();
    idle.put(1, t); // idle too long by the time it is asked for
    idle.put(2, t + KEEP);
    idle.put(3, t + KEEP); // closed by the upstream meanwhile
    let later = t + KEEP + Duration::from_secs(1);
    let mut asked = Vec::new();
    let got = idle.take(later, |c| {
        asked.push(*c);
        *c != 3
    });
    assert_eq!(got, Some(2));
    assert_eq!(asked, vec![3, 2], "the expired one is not even asked");
    assert_eq!(idle.take(later, alive), None, "1 expired, 3 closed");
}

#[test]
fn a_sweep_keeps_only_what_could_still_be_taken() {
    let idle = IdleConnections::new(8, KEEP);
    let t = Instant::now();
    idle.put(1, t);
    idle.put(2, t + KEEP);
    idle.put(3, t + KEEP);
    idle.put(4, t + KEEP);
    idle.sweep(t + KEEP + Duration::from_secs(1), |c| *c != 3);
    assert_eq!(idle.len(), 2);
    let now = t + KEEP;
    assert_eq!(idle.take(now, alive), Some(4));
    assert_eq!(idle.take(now, alive), Some(2));
}
