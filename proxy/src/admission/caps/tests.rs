//! Property test: random interleavings of admit / finish / cancel against
//! nested caps never exceed a cap and never leak a slot.

use super::*;
use arbitrary::{Arbitrary, Unstructured};

#[derive(Arbitrary, Debug)]
enum Op {
    /// Admit through the global cap and tenant `t % TENANTS`.
    Admit(u8),
    /// Finish the `i % len`-th admitted request normally.
    Finish(u16),
    /// Cancel one: same release path, taken out of the middle.
    Cancel(u16),
}

const TENANTS: usize = 4;

struct Model {
    global: Arc<Cap>,
    tenants: Vec<Arc<Cap>>,
    live: Vec<(usize, CapGuard, CapGuard)>,
}

impl Model {
    fn new(global_max: usize, tenant_max: usize) -> Self {
        Self {
            global: Cap::new(global_max),
            tenants: (0..TENANTS).map(|_| Cap::new(tenant_max)).collect(),
            live: Vec::new(),
        }
    }

    fn apply(&mut self, op: Op) -> bool {
        match op {
            Op::Admit(t) => {
                let t = t as usize % TENANTS;
                let Some(g) = self.global.try_acquire() else {
                    assert_eq!(
                        self.global.current(),
                        self.global.max(),
                        "refused below the cap"
                    );
                    return false;
                };
                match self.tenants[t].try_acquire() {
                    Some(tg) => self.live.push((t, g, tg)),
                    None => assert_eq!(self.tenants[t].current(), self.tenants[t].max()),
                }
            }
            Op::Finish(i) | Op::Cancel(i) if !self.live.is_empty() => {
                let i = i as usize % self.live.len();
                if matches!(op, Op::Finish(_)) {
                    self.live.swap_remove(i);
                } else {
                    self.live.remove(i);
                }
            }
            _ => {}
        }
        true
    }

    fn check(&self) {
        assert!(self.global.current() <= self.global.max());
        assert_eq!(
            self.global.current(),
            self.live.len(),
            "global count equals live requests"
        );
        for (t, cap) in self.tenants.iter().enumerate() {
            assert!(cap.current() <= cap.max());
            assert_eq!(
                cap.current(),
                self.live.iter().filter(|(lt, _, _)| *lt == t).count()
            );
        }
    }
}

/// xorshift bytes: deterministic input for `arbitrary`.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn random_interleavings_respect_every_cap() {
    const TOTAL_OPS: u64 = 10_000_000;
    let mut ops = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    while ops < TOTAL_OPS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data = bytes(seed, 1 << 16);
        let mut u = Unstructured::new(&data);
        let mut m = Model::new(1 + (seed % 64) as usize, 1 + (seed % 17) as usize);
        // `arbitrary` keeps yielding (zeroed) values once the bytes run out.
        while !u.is_empty() {
            let Ok(op) = Op::arbitrary(&mut u) else { break };
            m.apply(op);
            m.check();
            ops += 1;
        }
        m.live.clear();
        assert_eq!(m.global.current(), 0, "leaked a global slot");
        assert!(
            m.tenants.iter().all(|c| c.current() == 0),
            "leaked a tenant slot"
        );
    }
    println!("admission property test: {ops} operations");
}

#[test]
fn concurrent_threads_never_exceed_the_cap() {
    let cap = Cap::new(8);
    let peak = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (cap, peak) = (cap.clone(), peak.clone());
            s.spawn(move || {
                for i in 0..200_000u32 {
                    if let Some(g) = cap.try_acquire() {
                        peak.fetch_max(cap.current(), Ordering::AcqRel);
                        if (i + t) % 3 == 0 {
                            std::hint::black_box(&g);
                        }
                    }
                }
            });
        }
    });
    assert!(peak.load(Ordering::Acquire) <= 8);
    assert_eq!(cap.current(), 0);
}

#[tokio::test]
async fn bulkhead_queues_then_sheds() {
    let src = "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n[admission]\ntenant_max_concurrent_upstream = 1\ntenant_max_in_flight = 3\nqueue_timeout_ms = 50\n";
    let p = policies::parse_policy("t.toml", src).unwrap();
    let ac = AdmissionControl::new(&p);
    let a: TenantName = "a".into();
    let b: TenantName = "b".into();
    let first = ac.admit(&p, &a, "default").await.unwrap();
    // Tenant a's bulkhead is full: the next one waits, then gives up.
    assert_eq!(
        ac.admit(&p, &a, "default").await.unwrap_err(),
        Shed::Bulkhead
    );
    // Tenant b has its own partition.
    let _b = ac.admit(&p, &b, "default").await.unwrap();
    drop(first);
    let _again = ac.admit(&p, &a, "default").await.unwrap();
    assert_eq!(ac.in_flight(), 2);
}

fn caps_policy(global: usize, tenant: usize, bulkhead: usize) -> Policy {
    let src = format!(
        "[upstream]\nurl = \"http://127.0.0.1:1/mcp\"\n[admission]\nglobal_max_in_flight = {global}\n\
         tenant_max_in_flight = {tenant}\ntenant_max_concurrent_upstream = {bulkhead}\nqueue_timeout_ms = 50\n"
    );
    policies::parse_policy("t.toml", &src).unwrap()
}

#[tokio::test]
async fn a_lowered_cap_keeps_what_is_held_and_refuses_only_new_work() {
    let before = caps_policy(4, 4, 4);
    let ac = AdmissionControl::new(&before);
    let a: TenantName = "a".into();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ac.admit(&before, &a, "default").await.unwrap());
    }
    let after = caps_policy(2, 4, 4);
    ac.reconfigure(&after);
    // The three admitted requests stay admitted; a fourth is shed.
    assert_eq!(ac.in_flight(), 3);
    assert_eq!(
        ac.admit(&after, &a, "default").await.unwrap_err(),
        Shed::Global
    );
    // Once use is below the new cap, work is admitted again.
    held.truncate(1);
    let _next = ac.admit(&after, &a, "default").await.unwrap();
    assert_eq!(
        ac.admit(&after, &a, "default").await.unwrap_err(),
        Shed::Global
    );
    // Raised again: admitted at once.
    ac.reconfigure(&before);
    let _more = ac.admit(&before, &a, "default").await.unwrap();
    assert_eq!(ac.in_flight(), 3);
}

#[tokio::test]
async fn a_shrunk_bulkhead_waits_for_its_surplus_and_a_grown_one_admits_at_once() {
    let wide = caps_policy(100, 100, 3);
    let ac = AdmissionControl::new(&wide);
    let a: TenantName = "a".into();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ac.admit(&wide, &a, "default").await.unwrap());
    }
    let narrow = caps_policy(100, 100, 1);
    ac.reconfigure(&narrow);
    // Two given back: both taken out of use, so the bulkhead stays full.
    held.truncate(1);
    tokio::task::yield_now().await;
    assert_eq!(
        ac.admit(&narrow, &a, "default").await.unwrap_err(),
        Shed::Bulkhead
    );
    // The last one given back: one permit, as configured.
    held.clear();
    let one = ac.admit(&narrow, &a, "default").await.unwrap();
    assert_eq!(
        ac.admit(&narrow, &a, "default").await.unwrap_err(),
        Shed::Bulkhead
    );
    ac.reconfigure(&caps_policy(100, 100, 2));
    let _two = ac.admit(&narrow, &a, "default").await.unwrap();
    drop(one);
}
