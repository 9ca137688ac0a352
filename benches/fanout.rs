//! Fan-out of one message to 10,000 subscribers' output queues
//! (docs/performance.md, "criterion"): the work the event loop does per
//! subscriber before it writes, a refcount bump and a queue push.
//!
//! `cargo bench --bench fanout`

use std::hint::black_box;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pushlab::session::OutQueue;

const SUBSCRIBERS: usize = 10_000;

fn push_shared(c: &mut Criterion) {
    let frame: Rc<[u8]> =
        Rc::from(&b"\x81\x30{\"topic\":\"bench\",\"id\":\"lx2k9a-41\",\"data\":\"hi\"}"[..]);
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // Queues that are empty before the message (the common case: every
    // subscriber's previous output was written), then written out.
    g.bench_function("push_shared+consume", |b| {
        let mut queues: Vec<OutQueue> = (0..SUBSCRIBERS).map(|_| OutQueue::new()).collect();
        b.iter(|| {
            for q in &mut queues {
                q.push_shared(black_box(&frame));
            }
            for q in &mut queues {
                let n = q.len();
                q.consume(n);
            }
        })
    });
    // Queues that already hold one message: the push only.
    g.bench_function("push_shared_backlogged", |b| {
        b.iter_batched_ref(
            || {
                (0..SUBSCRIBERS)
                    .map(|_| {
                        let mut q = OutQueue::new();
                        q.push_shared(&frame);
                        q
                    })
                    .collect::<Vec<_>>()
            },
            |queues| {
                for q in queues.iter_mut() {
                    q.push_shared(black_box(&frame));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, push_shared);
criterion_main!(benches);
