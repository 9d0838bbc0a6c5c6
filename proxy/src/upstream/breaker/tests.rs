use super::*;

fn policy(consecutive: u32, rate: f64) -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures: consecutive,
        failure_rate: rate,
        window_ms: 10_000,
        min_requests: 10,
        cooldown_ms: 5_000,
        half_open_probes: 1,
        count_internal_errors: false,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn opens_after_consecutive_failures_and_fails_fast() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(3, 0.0));
    for i in 0..3 {
        assert_eq!(b.try_acquire(t0), Ok(Ticket::Normal));
        b.record(t0 + ms(i), Ticket::Normal, false);
    }
    assert!(matches!(b.state(), State::Open { .. }));
    assert_eq!(b.try_acquire(t0 + ms(1_000)), Err(ms(4_002)));
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(3, 0.0));
    for ok in [false, false, true, false, false] {
        b.record(t0, Ticket::Normal, ok);
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_probe_closes_or_reopens() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(1, 0.0));
    b.record(t0, Ticket::Normal, false);
    // After the cool-down one probe goes through, the next caller still fails fast.
    assert_eq!(b.try_acquire(t0 + ms(5_000)), Ok(Ticket::Probe));
    assert!(b.try_acquire(t0 + ms(5_001)).is_err());
    b.record(t0 + ms(5_010), Ticket::Probe, false);
    assert_eq!(
        b.state(),
        State::Open {
            until: t0 + ms(10_010)
        }
    );
    assert_eq!(b.try_acquire(t0 + ms(10_010)), Ok(Ticket::Probe));
    b.record(t0 + ms(10_020), Ticket::Probe, true);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.try_acquire(t0 + ms(10_021)), Ok(Ticket::Normal));
}

#[test]
fn unused_probe_is_given_back() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(1, 0.0));
    b.record(t0, Ticket::Normal, false);
    let ticket = b.try_acquire(t0 + ms(5_000)).unwrap();
    b.release_unused(ticket);
    assert_eq!(b.try_acquire(t0 + ms(5_001)), Ok(Ticket::Probe));
}

#[test]
fn failure_rate_over_the_window() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(0, 0.5));
    // 9 samples, 4 failures: below min_requests, stays closed.
    for i in 0..9 {
        b.record(t0 + ms(i), Ticket::Normal, i % 2 == 1 || i == 0);
    }
    assert_eq!(b.state(), State::Closed);
    b.record(t0 + ms(9), Ticket::Normal, false); // 10 samples, 5 failures: 50%
    assert!(matches!(b.state(), State::Open { .. }));
}

#[test]
fn old_samples_leave_the_window() {
    let t0 = Instant::now();
    let mut b = Breaker::new(policy(0, 0.5));
    for i in 0..9 {
        b.record(t0 + ms(i), Ticket::Normal, false);
    }
    // 20 s later the failures are out of the 10 s window.
    for i in 0..10 {
        b.record(t0 + ms(20_000 + i), Ticket::Normal, true);
    }
    assert_eq!(b.state(), State::Closed);
}
