//! The memory a review costs beyond its body, measured with a counting allocator: the peak of
//! live heap bytes while `review::handle` decodes, decides and encodes one review. The handler
//! reserves `budget::parse_cost` + `budget::decide_cost` for it in `--max-inflight-bytes`, and
//! the README's worst case rests on that being an upper bound: this test holds the code to it,
//! on apiserver-shaped reviews and on the JSON shapes that amplify most, under and over the
//! value caps of `admission::bounded`; and the encoded answer, which keeps the reservation
//! until it is sent, must fit in it as well.
//!
//! One #[test] only: the allocator counts every thread of the process.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use egress_webhook::admission::bounded::MAX_OBJECT_VALUES;
use egress_webhook::admission::budget::{decide_cost, parse_cost};
use egress_webhook::admission::review::{Endpoint, decode, handle};
use egress_webhook::core::{Options, Snapshot, defaults::default_object};
use serde_json::{Value, json};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak heap bytes above what was live before, while handling `body` at `endpoint`.
fn peak_extra(endpoint: Endpoint, body: &[u8], snap: &Snapshot, opts: &Options) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let outcome = handle(endpoint, body, snap, opts);
    let peak = PEAK.load(Ordering::SeqCst);
    drop(outcome);
    peak - base
}

fn create_review(object: Value) -> Vec<u8> {
    let uid = support::server::uid("mem");
    serde_json::to_vec(&support::server::review(
        &uid,
        "CREATE",
        Some(&object),
        None,
    ))
    .unwrap()
}

fn update_review(object: Value) -> Vec<u8> {
    let uid = support::server::uid("mem");
    let r = support::server::review(&uid, "UPDATE", Some(&object), Some(&object));
    serde_json::to_vec(&r).unwrap()
}

/// Values of about `n` repeated `unit`s: `[unit,unit,...]`.
fn many(unit: &str, n: usize) -> Value {
    serde_json::from_str(&format!("[{}]", vec![unit; n].join(","))).unwrap()
}

#[test]
fn a_review_holds_no_more_than_the_handler_reserves_for_it() {
    let opts = Options::default();
    let snap = Snapshot::new(
        support::seed()
            .into_iter()
            .map(|o| default_object(o, &opts)),
        &opts,
    );
    let es = support::server::es_raw();
    let with_spec = |key: &str, value: Value| {
        let mut o = es.clone();
        o["spec"][key] = value;
        o
    };
    // Just under the cap of a decided object (the seed takes ~30 values), and far over it.
    let under = MAX_OBJECT_VALUES - 100;
    let over = 100_000;
    let ports: Vec<Value> = (0..under / 4)
        .map(|i| json!({"number": 1000 + i, "name": format!("p{i}"), "protocol": "HTTP"}))
        .collect();
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("the seed ExternalService", create_review(es.clone())),
        (
            "UPDATE of an ExternalService with 2,475 ports",
            update_review(with_spec("ports", Value::Array(ports))),
        ),
        (
            "ports [{},...] under the cap",
            create_review(with_spec("ports", many("{}", under))),
        ),
        (
            "hosts [\"\",...] under the cap",
            create_review(with_spec("hosts", many("\"\"", under))),
        ),
        (
            "hosts [\"*\",...] under the cap",
            create_review(with_spec("hosts", many("\"*\"", under))),
        ),
        (
            "an unknown field [{},...] under the cap",
            create_review(with_spec("futureField", many("{}", under))),
        ),
        (
            "ports [{},...] over the cap",
            create_review(with_spec("ports", many("{}", over))),
        ),
        (
            "an unknown field [0,...] over the cap",
            create_review(with_spec("futureField", many("0", over))),
        ),
        (
            "a 3 MiB string",
            create_review(with_spec("futureField", json!("x".repeat(3 << 20)))),
        ),
    ];
    let mut report = Vec::new();
    let mut over_budget = Vec::new();
    for (name, body) in &shapes {
        let reserved =
            parse_cost(body.len()) + decode(body).map_or(0, |r| decide_cost(r.decided_values()));
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            // The answer keeps the reservation, trimmed to its size, until it is sent
            // (`answer_body`): it must fit in it too.
            let answer = serde_json::to_vec(&handle(endpoint, body, &snap, &opts).review).unwrap();
            if answer.len() > reserved {
                over_budget.push(format!(
                    "{name} at /{}: answer {} B, reserved {reserved} B",
                    endpoint.as_str(),
                    answer.len()
                ));
            }
            let extra = peak_extra(endpoint, body, &snap, &opts);
            let line = format!(
                "{name} at /{}: body {} B, peak {extra} B, reserved {reserved} B ({:.0}%)",
                endpoint.as_str(),
                body.len(),
                100.0 * extra as f64 / reserved as f64
            );
            if extra > reserved {
                over_budget.push(line.clone());
            }
            report.push(line);
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        over_budget.is_empty(),
        "reviews held more than was reserved for them:\n{}",
        over_budget.join("\n")
    );
}
