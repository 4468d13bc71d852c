//! The rows of the "Coming from Node.js and Python" table: for each thing a
//! Node.js or Python programmer already knows, the model in this workspace
//! that plays its part, and the preset on which its measured figures
//! (makespan, counter wait p99, efficiency) say something about it.
//! `compare --write-book` renders them with that run's figures into
//! `book/src/results/from-node-and-python.md`; nothing here is a number.
//!
//! The claims in `why` were checked against the projects' own
//! documentation: libuv's (the thread pool, 4 threads by default,
//! `UV_THREADPOOL_SIZE`; sockets polled with epoll, kqueue or IOCP, files
//! and `getaddrinfo` on the pool), Node.js's (`worker_threads`, `cluster`,
//! `setImmediate`) and Python's (`asyncio`, `concurrent.futures`). Where a
//! row names a Rust model, the book's chapter on that model says what the
//! model does, checked against its crate's source.

use restaurant::Preset;

/// One row: something from Node.js or Python, and its stand-in here.
pub struct Mapping {
    /// The Node.js or Python thing, as its users name it.
    pub theirs: &'static str,
    /// The package name of the model that plays its part.
    pub model: &'static str,
    /// The preset whose figures show the part being played.
    pub preset: Preset,
    /// Why this model, and what to read in its figures: one sentence.
    pub why: &'static str,
}

/// Every row, in the order the chapter discusses them: Node.js first,
/// then Python.
pub const ROWS: &[Mapping] = &[
    Mapping {
        theirs: "Node.js: the event loop (one thread; libuv polls the \
                 sockets with epoll)",
        model: "concurrency-tokio-current-thread",
        preset: Preset::Takeout,
        why: "one thread, every connection and timer on one loop: a burst \
              of mostly waiting orders is what it is good at",
    },
    Mapping {
        theirs: "Node.js: a long synchronous function on the loop",
        model: "blocking-blocked",
        preset: Preset::BigOrder,
        why: "the same loop with a long chop inline: nobody is greeted \
              until it returns, and the counter wait shows it",
    },
    Mapping {
        theirs: "Node.js: libuv's thread pool (UV_THREADPOOL_SIZE, 4 by \
                 default: files, dns.lookup, some crypto, zlib)",
        model: "blocking-spawn-blocking",
        preset: Preset::BigOrder,
        why: "a loop plus a small pool for work that would block it; unlike \
              libuv's, any closure may go there, chops included",
    },
    Mapping {
        theirs: "Node.js: setImmediate between slices of work",
        model: "blocking-yield-now",
        preset: Preset::BigOrder,
        why: "the work stays on the loop, cut into slices with a turn for \
              everyone else between them: no thread added, one core used",
    },
    Mapping {
        theirs: "Node.js: worker_threads",
        model: "blocking-dedicated-thread",
        preset: Preset::BigOrder,
        why: "threads you start and own, fed by messages from the loop, \
              each answer coming back to the loop as an event",
    },
    Mapping {
        theirs: "Node.js: child_process.fork, cluster",
        model: "parallelism-processes",
        preset: Preset::Banquet,
        why: "copies of the same program fed over pipes: CPU work on every \
              core, at the price of serialising every order",
    },
    Mapping {
        theirs: "Python: the asyncio event loop",
        model: "concurrency-tokio-current-thread",
        preset: Preset::LunchRush,
        why: "one thread, coroutines switched at each await: a steady \
              stream of short orders keeps it comfortable",
    },
    Mapping {
        theirs: "Python: asyncio.to_thread, loop.run_in_executor(None, …)",
        model: "blocking-spawn-blocking",
        preset: Preset::Banquet,
        why: "a pool beside the loop, threads started on demand; in \
              CPython the GIL lets only one of them run Python at a time, \
              here they chop on every core",
    },
    Mapping {
        theirs: "Python: ProcessPoolExecutor",
        model: "parallelism-processes",
        preset: Preset::Banquet,
        why: "worker processes, one per core, each order pickled across: \
              the way past the GIL for CPU work",
    },
    Mapping {
        theirs: "Python: uvloop",
        model: "concurrency-tokio-current-thread",
        preset: Preset::Banquet,
        why: "a faster engine for the same one-thread loop: it cuts the \
              loop's own overhead, not the chopping, which still gets one \
              core",
    },
];
