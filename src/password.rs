//! Password hashing: argon2id in PHC string format, verified in constant time by argon2, and
//! the bounded pool every hash and verify of a running server goes through.
//!
//! One argon2id run with the default parameters takes 19 MiB and tens of milliseconds of one
//! core. Run on the async workers it stalls every other request; run on tokio's blocking pool
//! (up to 512 threads) a login flood holds hundreds of them at once (gigabytes). So a server
//! hashes on a [`Pool`] of its own: one thread per core but one (so a core stays free for the
//! async workers' requests), at least 1 and at most [`Pool::WORKERS_MAX`], and a queue of
//! [`Pool::QUEUE_PER_WORKER`] jobs per thread. A job that finds the queue full is not
//! queued: the caller answers 503 at once ([`Busy`]). Each pool thread keeps its argon2
//! working memory from one run to the next instead of allocating 19 MiB per run (the
//! allocator's per-thread arenas kept such blocks around by the dozen), so argon2 memory is
//! exactly the number of threads times 19 MiB, whatever the load; the threads end when the
//! server does. Hashes asking for more memory than the default are refused (they are never
//! made here).
//!
//! Pool threads run [`Pool::NICE`] steps below the server's other threads: where argon2
//! shares a core with the async workers (a server pinned to one core, a busy machine), a flood
//! of logins then takes mostly idle time rather than the other requests' (measured with
//! `scripts/bench`'s login floods, README "Benchmarks": at nice 10 a flood still raised get
//! user's p99 3.4-3.8x, at 19 1.4-1.9x; `SCHED_IDLE` did no better here and would starve
//! logins outright on a saturated core); where the pool has a core of its own it changes
//! nothing.
//!
//! A low priority alone still let argon2 hold a shared core for a whole scheduler tick (4 ms at
//! the usual 250 Hz) about ten times a second: Linux's scheduler picks it now and then for its
//! small share, and a busy async worker, runnable but not waking up, gives the scheduler no
//! reason to take the core back before the next tick (`perf sched timehist`: 40-56 such runs
//! in 4 s of a login flood). So pool threads also ask for the shortest slice Linux (6.12 and
//! later) grants, [`Pool::SLICE`], and while any job runs a pacer thread at the server's own
//! priority wakes every [`Pool::PACE`]: each wake-up is a point where the scheduler can hand
//! the core back to a waiting worker (then: 1 such run in 4 s; get user's p99 during a flood
//! 0.9-1.2x alone instead of 1.4-2.3x, three alternating pairs each).

use std::cell::{OnceCell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use argon2::password_hash::errors::InvalidValue;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    self, Decimal, Ident, Output, ParamsString, PasswordHasher, PasswordVerifier, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use aws_lc_rs::digest;

/// The argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    with_argon2(|argon2| {
        argon2
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 with default parameters hashes any password")
            .to_string()
    })
}

/// Whether `password` matches `hash` (false for a malformed hash).
pub fn verify(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    // The output comparison is argon2's, in constant time.
    with_argon2(|argon2| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
}

thread_local! {
    /// A pool thread's argon2 working memory, kept across runs (unset on other threads).
    static MEMORY: OnceCell<RefCell<Vec<Block>>> = const { OnceCell::new() };
}

/// Runs `f` with argon2 working in this thread's kept memory, or in memory of its own (freed
/// after) on a thread that keeps none.
fn with_argon2<T>(f: impl FnOnce(&KeptMemory) -> T) -> T {
    MEMORY.with(|kept| match kept.get() {
        Some(memory) => f(&KeptMemory(memory)),
        None => f(&KeptMemory(&RefCell::default())),
    })
}

/// argon2 (the algorithm, version and parameters a hash names, argon2id's defaults for a new
/// one) computing in the given memory. The `PasswordHasher` impl is argon2's own but for where
/// the memory comes from; `PasswordVerifier` comes with it.
struct KeptMemory<'m>(&'m RefCell<Vec<Block>>);

impl PasswordHasher for KeptMemory<'_> {
    type Params = Params;

    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?.unwrap_or_default();
        let version = version.map(Version::try_from).transpose()?.unwrap_or_default();
        if params.m_cost() > Params::DEFAULT_M_COST {
            return Err(password_hash::Error::ParamValueInvalid(InvalidValue::TooLong));
        }
        let salt = salt.into();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let params_string = ParamsString::try_from(&params)?;
        let mut memory = self.0.borrow_mut();
        memory.resize(params.block_count(), Block::default());
        let argon2 = Argon2::new(algorithm, version, params);
        let output = Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: params_string,
            salt: Some(salt),
            hash: Some(output),
        })
    }
}

/// Which password a hash is of, without the password: the first bytes of the SHA-256 of the
/// PHC string, whose salt is random, so every password set gets a new one. Tokens carry it to
/// say which password they were issued against.
pub type Fingerprint = [u8; 12];

/// The [`Fingerprint`] of `hash`, a PHC string.
pub fn fingerprint(hash: &str) -> Fingerprint {
    let digest = digest::digest(&digest::SHA256, hash.as_bytes());
    let mut fingerprint = Fingerprint::default();
    let len = fingerprint.len();
    fingerprint.copy_from_slice(&digest.as_ref()[..len]);
    fingerprint
}

/// The pool's queue was full: the caller answers 503 with `Retry-After` at once.
#[derive(Debug)]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run password hashes and verifies, fed by a bounded queue.
pub struct Pool {
    jobs: SyncSender<Job>,
}

impl Pool {
    /// At most this many threads, whatever the cores: the argon2 memory bound is this times
    /// 19 MiB.
    pub const WORKERS_MAX: usize = 4;
    /// Jobs that may wait per thread: enough for a test suite's parallel logins, and a full
    /// queue is well under a second of work.
    pub const QUEUE_PER_WORKER: usize = 16;
    /// How many nice steps below the rest of the server a pool thread runs (capped at 19,
    /// the lowest; a server at nice 0 runs its pool at 19).
    pub const NICE: i32 = 19;
    /// The scheduler slice a pool thread asks for: the shortest Linux accepts.
    pub const SLICE: Duration = Duration::from_micros(100);
    /// How often the pacer wakes while a job runs.
    pub const PACE: Duration = Duration::from_micros(500);

    /// A pool with one thread per core but one (at least 1, at most [`Self::WORKERS_MAX`]),
    /// and its pacer.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cores.saturating_sub(1).clamp(1, Self::WORKERS_MAX);
        let (jobs, queue) = mpsc::sync_channel::<Job>(workers * Self::QUEUE_PER_WORKER);
        let queue = Arc::new(Mutex::new(queue));
        let pacer = Arc::new(Pacer::new(workers));
        // Spawned from here, so that it keeps the server's priority.
        let pacing = pacer.clone();
        std::thread::Builder::new()
            .name("password-pacer".into())
            .spawn(move || pacing.pace())
            .expect("the password pool's pacer starts");
        for n in 0..workers {
            let (queue, pacer) = (queue.clone(), pacer.clone());
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || work(&queue, &pacer))
                .expect("a password hashing thread starts");
        }
        Self { jobs }
    }

    /// Runs `job` on a pool thread and waits for its result, or [`Busy`] at once if the queue
    /// is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The waiter may have gone (its client hung up); the work is done either way.
            let _ = reply.send(job());
        });
        self.jobs.try_send(job).map_err(|_| Busy)?;
        // A job that panicked dropped its reply: answer as for a full queue.
        answer.await.map_err(|_| Busy)
    }

    /// The argon2id hash of `password`, computed on the pool.
    pub async fn hash(&self, password: &str) -> Result<String, Busy> {
        let password = password.to_string();
        self.run(move || hash(&password)).await
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

/// The calling thread's nice value (on Linux every thread has its own; `PRIO_PROCESS` with
/// id 0 names the calling thread).
fn nice() -> std::io::Result<i32> {
    // getpriority answers -1 both as a value and as the error: errno tells them apart.
    unsafe { *libc::__errno_location() = 0 };
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    match std::io::Error::last_os_error() {
        e if nice == -1 && e.raw_os_error() != Some(0) => Err(e),
        _ => Ok(nice),
    }
}

/// Moves the calling pool thread [`Pool::NICE`] steps down and asks for [`Pool::SLICE`] (a
/// kernel older than 6.12 takes the nice value and ignores the slice; where `sched_setattr` is
/// refused, `setpriority` still lowers the thread). Failing leaves it where it was (slower
/// requests during a login flood, nothing worse), so it is only reported.
fn lower_priority() {
    let lowered = nice().and_then(|nice| {
        let lower = (nice + Pool::NICE).min(19);
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            nice: lower,
            runtime: Pool::SLICE.as_nanos() as u64,
            ..SchedAttr::default()
        };
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) } == 0 {
            return Ok(());
        }
        match unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, lower) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    if let Err(e) = lowered {
        eprintln!("privx-mock: could not lower the password pool's priority: {e}");
    }
}

/// `struct sched_attr` of `sched_setattr(2)`, its first version (the libc crate has none).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    /// For `SCHED_OTHER`: the slice asked for, in nanoseconds.
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// The pool's pacer: a thread that wakes every [`Pool::PACE`] while any job runs and waits
/// otherwise, and ends once every pool thread has (see the module's documentation for why).
struct Pacer {
    pacing: Mutex<Pacing>,
    changed: Condvar,
}

/// What the pacer goes by: how many jobs run, and how many pool threads are left.
struct Pacing {
    jobs: usize,
    workers: usize,
}

impl Pacer {
    fn new(workers: usize) -> Self {
        Self { pacing: Mutex::new(Pacing { jobs: 0, workers }), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pacer thread's life.
    fn pace(&self) {
        let mut pacing = self.lock();
        while pacing.workers > 0 {
            if pacing.jobs == 0 {
                pacing = self.changed.wait(pacing).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            drop(pacing);
            std::thread::sleep(Pool::PACE);
            pacing = self.lock();
        }
    }

    /// Counts a job or a pool thread in or out, and tells the pacer.
    fn change(&self, change: impl FnOnce(&mut Pacing)) {
        change(&mut self.lock());
        self.changed.notify_one();
    }
}

/// A pool thread: runs jobs, keeping argon2's memory, until the pool (the only sender) is
/// dropped.
fn work(queue: &Mutex<Receiver<Job>>, pacer: &Pacer) {
    lower_priority();
    MEMORY.with(|memory| {
        memory.get_or_init(RefCell::default);
    });
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = job else {
            pacer.change(|pacing| pacing.workers -= 1);
            return;
        };
        pacer.change(|pacing| pacing.jobs += 1);
        // A panicking job must not take the thread with it (the pool would shrink).
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        pacer.change(|pacing| pacing.jobs -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_threads_run_below_the_rest_of_the_server() {
        let pool = Pool::new();
        let server = nice().unwrap();
        let pool_thread = pool.run(nice).await.unwrap().unwrap();
        assert_eq!(pool_thread, (server + Pool::NICE).min(19));
        // The caller's own priority is untouched (nice is per thread).
        assert_eq!(nice().unwrap(), server);
    }

    /// The scheduler's view of the calling thread: `se.slice` in `/proc/thread-self/sched`.
    fn slice() -> Option<u64> {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = sched.lines().find(|line| line.starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    /// Whether the kernel grants custom slices (Linux 6.12 and later).
    fn custom_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut version = release.split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
        (version.next().unwrap(), version.next().unwrap()) >= (6, 12)
    }

    #[tokio::test]
    async fn pool_threads_ask_for_the_shortest_slice() {
        let pool = Pool::new();
        let server = slice();
        let pool_thread = pool.run(slice).await.unwrap();
        if custom_slices() {
            assert_eq!(pool_thread, Some(Pool::SLICE.as_nanos() as u64));
            assert_ne!(server, pool_thread);
        }
    }

    /// How many times the thread named `name` of this process has gone to sleep.
    fn sleeps(name: &str) -> u64 {
        let tasks = std::fs::read_dir("/proc/self/task").unwrap();
        let task = tasks.flatten().find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        });
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let line = status.lines().find(|line| line.starts_with("voluntary_ctxt_switches"));
        line.unwrap().split(':').nth(1).unwrap().trim().parse().unwrap()
    }

    #[test]
    fn the_pacer_wakes_while_a_job_runs_and_ends_with_the_pool_threads() {
        let pacer = Arc::new(Pacer::new(1));
        let (pacing, (started, running)) = (pacer.clone(), mpsc::channel());
        let thread = std::thread::Builder::new()
            .name("pacer-test".into())
            .spawn(move || {
                // Its name is set by now.
                started.send(()).unwrap();
                pacing.pace()
            })
            .unwrap();
        running.recv().unwrap();
        let window = Pool::PACE * 200;
        let idle = sleeps("pacer-test");
        std::thread::sleep(window);
        // Waiting for a job, it sleeps once at most (on the condition variable).
        assert!(sleeps("pacer-test") <= idle + 1);
        pacer.change(|pacing| pacing.jobs += 1);
        let busy = sleeps("pacer-test");
        std::thread::sleep(window);
        // About 200 wake-ups in the window; a loaded machine may delay some.
        assert!(sleeps("pacer-test") >= busy + 50);
        pacer.change(|pacing| pacing.jobs -= 1);
        pacer.change(|pacing| pacing.workers -= 1);
        thread.join().unwrap();
    }
}
