//! Heap profile of the static catalog (issue 12 item 5: where the bytes of `serve --objects` go).
//! Loads the files the way `serve --objects` does (`load::load_each` into a
//! `Snapshot`, then `Catalog::from_snapshot`) under the dhat heap profiler, drops everything but the catalog, and
//! prints the heap in use at the peak and at the end. dhat writes `dhat-heap.json`;
//! `bench/dhat_top.py dhat-heap.json` prints its largest allocation sites.
//!
//! usage: cargo run --release --features dhat-heap --example catalog_heap -- FILE...

use egress_webhook::{
    catalog::Catalog,
    core::{Options, Snapshot, defaults::default_object},
    load,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!files.is_empty(), "usage: catalog_heap FILE...");
    let profiler = dhat::Profiler::new_heap();
    let opts = Options::default();
    // As `serve --objects` does (src/cli/serve.rs): object by object into the snapshot.
    let mut snap = Snapshot::new(Vec::new(), &opts);
    load::load_each(&files, &mut |l| {
        snap.insert(default_object(l.object, &opts))
    })?;
    let catalog = Catalog::from_snapshot(snap, &opts);
    let stats = dhat::HeapStats::get();
    let objects: usize = catalog.counts().iter().map(|(_, n)| n).sum();
    println!(
        "objects: {objects}\nheap at the end: {} bytes in {} blocks ({} bytes per object)\npeak: {} bytes in {} blocks",
        stats.curr_bytes,
        stats.curr_blocks,
        stats.curr_bytes / objects.max(1),
        stats.max_bytes,
        stats.max_blocks,
    );
    // The catalog is still alive here, so dhat's "at the end" figures are the catalog's.
    drop(profiler);
    drop(catalog);
    Ok(())
}
