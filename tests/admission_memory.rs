//! The memory a review costs beyond its body, measured with a counting allocator: the peak of
//! live heap bytes while `review::handle` decodes, decides and encodes one review, over the
//! body's length. `budget::PARSE_AMPLIFICATION` is the bound the README's worst case is stated
//! with; this test holds the code to it, on apiserver-shaped reviews and on the JSON shapes
//! that amplify most.
//!
//! One #[test] only: the allocator counts every thread of the process.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use egress_webhook::admission::budget::PARSE_AMPLIFICATION;
use egress_webhook::admission::review::{Endpoint, handle};
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
                let now =
                    LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
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
    serde_json::to_vec(&support::server::review(&uid, "CREATE", Some(&object), None)).unwrap()
}

fn update_review(object: Value) -> Vec<u8> {
    let uid = support::server::uid("mem");
    let r = support::server::review(&uid, "UPDATE", Some(&object), Some(&object));
    serde_json::to_vec(&r).unwrap()
}

/// About `target` bytes of `unit` repeated, as a JSON array's text.
fn repeated(unit: &str, target: usize) -> Value {
    let n = target / (unit.len() + 1);
    serde_json::from_str(&format!("[{}]", vec![unit; n].join(","))).unwrap()
}

#[test]
fn a_review_holds_at_most_parse_amplification_times_its_body() {
    let opts = Options::default();
    let snap = Snapshot::new(
        support::seed().into_iter().map(|o| default_object(o, &opts)),
        &opts,
    );
    const SIZE: usize = 1 << 20;
    let es = support::server::es_raw();
    let with_spec = |key: &str, value: Value| {
        let mut o = es.clone();
        o["spec"][key] = value;
        o
    };
    let ports: Vec<Value> = (0..SIZE / 60)
        .map(|i| json!({"number": 1000 + i % 60000, "name": format!("p{i}"), "protocol": "HTTP"}))
        .collect();
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("the seed ExternalService (small)", create_review(es.clone())),
        (
            "UPDATE of an ExternalService with 17,000 ports",
            update_review(with_spec("ports", Value::Array(ports))),
        ),
        (
            "an unknown field holding [{},{},...]",
            create_review(with_spec("futureField", repeated("{}", SIZE))),
        ),
        (
            "an unknown field holding [[],[],...]",
            create_review(with_spec("futureField", repeated("[]", SIZE))),
        ),
        ("hosts [\"\",\"\",...]", create_review(with_spec("hosts", repeated("\"\"", SIZE)))),
        (
            "hosts [\"*\",\"*\",...]",
            create_review(with_spec("hosts", repeated("\"*\"", SIZE))),
        ),
        (
            "ports [{},{},...]",
            create_review(with_spec("ports", repeated("{}", SIZE))),
        ),
    ];
    let mut report = Vec::new();
    let mut worst: f64 = 0.0;
    for (name, body) in &shapes {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let extra = peak_extra(endpoint, body, &snap, &opts);
            let factor = extra as f64 / body.len() as f64;
            report.push(format!(
                "{name} at /{}: body {} B, peak {} B above it: {factor:.1}×",
                endpoint.as_str(),
                body.len(),
                extra
            ));
            // Small reviews: fixed costs dominate; the bound is for the large ones.
            if body.len() > 64 << 10 {
                worst = worst.max(factor);
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        worst <= PARSE_AMPLIFICATION as f64,
        "a review held {worst:.1}× its body, above PARSE_AMPLIFICATION = {PARSE_AMPLIFICATION}:\n{}",
        report.join("\n")
    );
}
