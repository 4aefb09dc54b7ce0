//! Heap allocations of one review (issue 12: the allocator's share of a review's CPU in the
//! closed-loop profile). Decides a review body the way `serve` does (`review::handle` against a
//! snapshot of the given files, then the answer encoded) under dhat, and prints the blocks and
//! bytes allocated per review. Allocation counts do not depend on the machine's load, so a change
//! to the review path can be judged by them where timings on a shared host cannot. dhat writes
//! `dhat-heap.json` (the reviews only: the profiler starts after the files are loaded);
//! `bench/dhat_top.py --total dhat-heap.json` prints where the blocks were asked for.
//!
//! usage: cargo run --release --features dhat-heap --example review_allocs -- REVIEW.json validate|mutate FILE...

use egress_webhook::{
    admission::review::{Endpoint, handle},
    core::{Options, Snapshot, defaults::default_object},
    load,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ROUNDS: u64 = 1000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: review_allocs REVIEW.json validate|mutate FILE...";
    let review = std::fs::read(args.next().ok_or_else(|| anyhow::anyhow!(usage))?)?;
    let endpoint = match args.next().as_deref() {
        Some("validate") => Endpoint::Validate,
        Some("mutate") => Endpoint::Mutate,
        _ => anyhow::bail!(usage),
    };
    let files: Vec<String> = args.collect();
    let opts = Options::default();
    let mut snap = Snapshot::new(Vec::new(), &opts);
    load::load_each(&files, &mut |l| {
        snap.insert(default_object(l.object, &opts))
    })?;
    let _profiler = dhat::Profiler::builder().trim_backtraces(None).build();
    let one = |snap: &Snapshot| {
        let outcome = handle(endpoint, &review, snap, &opts);
        let answer = serde_json::to_vec(&outcome.review).expect("an answer encodes");
        (outcome.verdict, answer.len())
    };
    let (verdict, len) = one(&snap);
    let before = dhat::HeapStats::get();
    for _ in 0..ROUNDS {
        std::hint::black_box(one(&snap));
    }
    let after = dhat::HeapStats::get();
    println!(
        "verdict {}, answer {len} bytes; per review: {} blocks, {} bytes allocated",
        verdict.as_str(),
        (after.total_blocks - before.total_blocks) / ROUNDS,
        (after.total_bytes - before.total_bytes) / ROUNDS,
    );
    Ok(())
}
