//! Heap allocations per call of the request path's pure functions (issue
//! 31, "Allocations per request"): the whole decision of a public,
//! terminal and signed peer request, the identity assertion handed out
//! again, and a fresh trace. A counting global allocator around the
//! system's; each case runs 1,000 times after a warm-up, and the counts
//! per call are printed
//! (`cargo bench -p portal-core --bench allocations`). Allocation counts,
//! unlike times, repeat exactly run after run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod fixture;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above, that is by System.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RUNS: u64 = 1_000;

/// Allocations and bytes per call of `f`.
fn per_call<T>(mut f: impl FnMut() -> T) -> (f64, f64) {
    for _ in 0..10 {
        drop(black_box(f()));
    }
    let (a0, b0) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    for _ in 0..RUNS {
        drop(black_box(f()));
    }
    let (a1, b1) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    (
        (a1 - a0) as f64 / RUNS as f64,
        (b1 - b0) as f64 / RUNS as f64,
    )
}

fn main() {
    use portal_core::assertion::Assertions;
    use portal_core::caller::Caller;
    use portal_core::decide::{decide, Verdict};

    let f = fixture::Fixture::new();
    println!("{:<28} {:>12} {:>12}", "call", "allocations", "bytes");
    for (name, head, client_type) in f.cases() {
        match decide(&head, &f.snapshot, &f.policy, fixture::NOW).verdict {
            Verdict::Forward(plan) => assert_eq!(plan.caller().client_type(), client_type),
            Verdict::Refuse(r) => panic!("{name}: refused: {r:?}"),
        }
        let (n, bytes) =
            per_call(|| decide(black_box(&head), &f.snapshot, &f.policy, fixture::NOW));
        println!("{:<28} {n:>12.1} {bytes:>12.0}", format!("decide/{name}"));
    }
    let assertions = Assertions::new(&f.peer, 60);
    let caller = Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    };
    let (n, bytes) = per_call(|| assertions.for_caller("mosquitto", &caller, None, 1_000).0);
    println!("{:<28} {n:>12.1} {bytes:>12.0}", "assertion/cached");
    // Every request that brings no trace of its own gets a fresh one
    // (benches/README.md, "Allocations of the whole binary": was 30).
    let mut draw = [7u8; 24];
    let (n, bytes) = per_call(|| {
        draw[0] = draw[0].wrapping_add(1);
        portal_core::trace::TraceParent::fresh(black_box(draw))
    });
    println!("{:<28} {n:>12.1} {bytes:>12.0}", "trace/fresh");
}
