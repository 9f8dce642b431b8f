//! What every benchmark needs around the thing it measures: the embedded broker and the Sluice workers
//! as child processes (so that a worker's peak RSS is its own), waiting with a deadline, the end
//! offsets of a topic, and medians and ratios.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::BenchError;

/// How long any one phase may take before the benchmark gives up.
pub const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// librdkafka's sticky partitioner fills one partition at a time, which can push a partition past the
/// embedded broker's retention; 0 spreads keyless records over the partitions one by one.
pub const SPREAD_EVENLY: &str = "0";

/// `measured` as a fraction of `baseline`'s speed: above 1 is faster than the baseline.
pub fn ratio(baseline: Duration, measured: Duration) -> f64 {
    baseline.as_secs_f64() / measured.as_secs_f64()
}

/// Runs a round's baseline and the Sluice side it is compared with: the baseline first in even rounds,
/// second in odd ones, so that what the first run leaves behind (a broker holding a million more
/// records, a database writing back what was inserted) weighs on both sides alike.
pub fn in_turn<B, S>(
    round: usize,
    baseline: impl FnOnce() -> Result<B, BenchError>,
    sluice: impl FnOnce() -> Result<S, BenchError>,
) -> Result<(B, S), BenchError> {
    if round % 2 == 0 {
        let baseline = baseline()?;
        Ok((baseline, sluice()?))
    } else {
        let sluice = sluice()?;
        Ok((baseline()?, sluice))
    }
}

pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median of one duration over the rounds.
pub fn median_duration<R>(rounds: &[R], of: impl Fn(&R) -> Duration) -> Duration {
    Duration::from_secs_f64(median(rounds.iter().map(|r| of(r).as_secs_f64())))
}

/// The embedded broker in a child `sluice broker` process, stopped when dropped.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
}

impl Broker {
    /// Starts the broker with these topics and reads its bootstrap address.
    pub fn start(topics: &[String], partitions: i32) -> Result<Broker, BenchError> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("broker");
        for topic in topics {
            command.arg("--topic").arg(format!("{topic}:{partitions}"));
        }
        let mut child = command
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut bootstrap = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut bootstrap)?;
        }
        let bootstrap = bootstrap.trim().to_owned();
        let broker = Broker { child, bootstrap };
        if broker.bootstrap.is_empty() {
            return Err(BenchError::Failed("the broker did not start".into()));
        }
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        stop(&self.child);
        let _ = self.child.wait();
    }
}

/// Asks a child process to stop, as Ctrl-C would.
fn stop(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Writes a worker file in `work` for a worker named `name` on this broker, with its own offsets
/// file; `extra` holds more `key=value` lines (converters, client settings).
pub fn worker_file(
    work: &Path,
    name: &str,
    bootstrap: &str,
    extra: &str,
) -> Result<PathBuf, BenchError> {
    let file = work.join(format!("{name}-worker.properties"));
    let offsets = work.join(format!("{name}.offsets"));
    std::fs::write(
        &file,
        format!(
            "bootstrap.servers={bootstrap}\noffset.storage.file.filename={}\nproducer.sticky.partitioning.linger.ms={SPREAD_EVENLY}\nlisteners=http://127.0.0.1:0\n{extra}",
            offsets.display()
        ),
    )?;
    Ok(file)
}

/// A `sluice standalone` child process running one connector.
pub struct Worker {
    pub child: Child,
    /// When the worker logged its ready line.
    ready: mpsc::Receiver<Instant>,
    /// The CPU time the worker had used when it was seen ready.
    cpu_at_ready: Option<f64>,
}

impl Worker {
    /// Starts a worker with this worker file and connector file; `ready_line` is the log line after
    /// which it moves data.
    pub fn spawn(
        worker_file: &Path,
        connector: &Path,
        ready_line: &'static str,
    ) -> Result<Worker, BenchError> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("standalone")
            .arg(worker_file)
            .arg(connector)
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = stderr {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(ready_line) {
                        let _ = tx.send(Instant::now());
                    }
                    if line.contains("ERROR") {
                        eprintln!("worker: {line}");
                    }
                }
            });
        }
        Ok(Worker {
            child,
            ready: rx,
            cpu_at_ready: None,
        })
    }

    /// Waits for the worker's ready line.
    pub fn ready(&mut self) -> Result<Instant, BenchError> {
        let ready = self
            .ready
            .recv_timeout(PHASE_LIMIT)
            .map_err(|_| BenchError::Failed("a worker never logged that it was ready".into()))?;
        self.cpu_at_ready = cpu_seconds(&self.child.id().to_string());
        Ok(ready)
    }

    /// The CPU seconds (user and system, all threads) the worker used since it was seen ready.
    pub fn cpu_since_ready(&self) -> f64 {
        cpu_used_since(&self.child.id().to_string(), self.cpu_at_ready)
    }

    /// Reads the child's peak RSS, stops it with SIGTERM and returns the elapsed time since `from`.
    pub fn finish(
        mut self,
        result: Result<Instant, BenchError>,
        from: Instant,
    ) -> Result<(Duration, f64), BenchError> {
        let rss = peak_rss_mb(self.child.id());
        stop(&self.child);
        let status = self.child.wait()?;
        let done = result?;
        if !status.success() {
            return Err(BenchError::Failed(format!("a worker exited with {status}")));
        }
        Ok((done - from, rss.unwrap_or(f64::NAN)))
    }
}

/// Polls `done` every `every` until it holds; fails if the child exits first or the phase takes too
/// long.
pub fn wait_until(
    from: Instant,
    child: &mut Child,
    every: Duration,
    mut done: impl FnMut() -> Result<bool, BenchError>,
) -> Result<Instant, BenchError> {
    wait_paced(from, child, || Ok((!done()?).then_some(every)))
}

/// Asks `next` until it returns `None` (done); otherwise it says how long to wait before asking
/// again. Fails if the child exits first or the phase takes too long.
fn wait_paced(
    from: Instant,
    child: &mut Child,
    mut next: impl FnMut() -> Result<Option<Duration>, BenchError>,
) -> Result<Instant, BenchError> {
    loop {
        let Some(wait) = next()? else {
            return Ok(Instant::now());
        };
        if let Some(status) = child.try_wait()? {
            return Err(BenchError::Failed(format!(
                "a worker exited early with {status}"
            )));
        }
        if from.elapsed() > PHASE_LIMIT {
            return Err(BenchError::Failed("a worker did not finish in time".into()));
        }
        std::thread::sleep(wait);
    }
}

/// The baseline producer of the source benchmarks, ready to be timed as a source worker is.
///
/// The worker creates its producer before its task starts (and moved 2,000 lines 65 ms after that
/// start, so no such wait showed in its time), so this one first writes one record to a topic of its
/// own, untimed. Its first flush took about half a second here (the idempotent producer's start-up,
/// most likely), and timing it made the raw producer look that much slower. The end is the last
/// acknowledgement, looked for every millisecond: rdkafka-rs's `flush` waits in steps of up to
/// 100 ms while the producer's own thread takes the reports.
pub struct RawProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl RawProducer {
    /// Connects with the worker's producer settings and waits until a first record to
    /// `{topic}-warm-up` is acknowledged.
    pub fn ready(bootstrap: &str, topic: &str) -> Result<RawProducer, BenchError> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("sticky.partitioning.linger.ms", SPREAD_EVENLY)
            .create()?;
        let warm_up = format!("{topic}-warm-up");
        producer
            .send(BaseRecord::<(), [u8]>::to(&warm_up).payload(&b"warm-up"[..]))
            .map_err(|(e, _)| e)?;
        producer.flush(PHASE_LIMIT)?;
        Ok(RawProducer { producer })
    }

    /// Queues one record; false when librdkafka's queue is full (the caller waits and tries again).
    pub fn try_send(&self, topic: &str, payload: &[u8]) -> Result<bool, BenchError> {
        match self
            .producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(payload))
        {
            Ok(()) => Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
            Err((e, _)) => Err(e.into()),
        }
    }

    /// Waits until every queued record is acknowledged and says how long that took after `started`.
    pub fn acknowledged(&self, started: Instant) -> Result<Duration, BenchError> {
        while self.producer.in_flight_count() > 0 {
            if started.elapsed() > PHASE_LIMIT {
                return Err(BenchError::Failed(
                    "the raw producer's records were not acknowledged in time".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(started.elapsed())
    }
}

/// Notes when a raw consumer's group first assigned it partitions (the moment a sink worker logs as
/// "partitions assigned"), and the CPU time its process had used by then.
#[derive(Default)]
pub struct AssignmentClock {
    assigned: Mutex<Option<(Instant, Option<f64>)>>,
}

impl AssignmentClock {
    pub fn assigned(&self) -> Option<Instant> {
        self.first().map(|(at, _)| at)
    }

    /// The CPU seconds this process used since the assignment.
    pub fn cpu_since_assigned(&self) -> f64 {
        cpu_used_since("self", self.first().and_then(|(_, cpu)| cpu))
    }

    fn first(&self) -> Option<(Instant, Option<f64>)> {
        self.assigned.lock().ok().and_then(|at| *at)
    }
}

impl ClientContext for AssignmentClock {}

impl ConsumerContext for AssignmentClock {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(_), Ok(mut at)) = (rebalance, self.assigned.lock()) {
            at.get_or_insert_with(|| (Instant::now(), cpu_seconds("self")));
        }
    }
}

/// Counts the records of a topic from the end offsets of all its partitions, asked in one
/// ListOffsets request: a watcher must not load the broker a worker is writing to.
pub struct TopicEnds {
    watcher: BaseConsumer,
    ends: TopicPartitionList,
}

impl TopicEnds {
    pub fn new(bootstrap: &str, topic: &str, partitions: i32) -> Result<TopicEnds, BenchError> {
        let watcher: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
        let mut ends = TopicPartitionList::with_capacity(partitions as usize);
        for p in 0..partitions {
            ends.add_partition_offset(topic, p, Offset::End)?;
        }
        Ok(TopicEnds { watcher, ends })
    }

    /// Waits until the topic holds `target` records, written by `child` since `from`. Asks rarely
    /// while the end is far and every 5 ms near it: the embedded broker answers a ListOffsets by
    /// walking each partition's log (for the leader epoch it returns), so a watcher asking every few
    /// milliseconds loads the broker more and more as the topic grows, and takes CPU from the worker
    /// being measured, which the plain programs (timed by their own flush) do not pay.
    pub fn wait_for(
        &self,
        from: Instant,
        child: &mut Child,
        target: usize,
    ) -> Result<Instant, BenchError> {
        const NEAR: Duration = Duration::from_millis(5);
        const FAR: Duration = Duration::from_millis(250);
        wait_paced(from, child, || {
            let held = self.total();
            if held >= target {
                return Ok(None);
            }
            if held == 0 {
                return Ok(Some(NEAR * 4));
            }
            // At the rate so far, the rest takes `left`; ask again halfway there.
            let left = from.elapsed().mul_f64((target - held) as f64 / held as f64);
            Ok(Some((left / 2).clamp(NEAR, FAR)))
        })
    }

    /// The records the topic holds; 0 when the broker does not answer in time.
    pub fn total(&self) -> usize {
        let total: i64 = match self
            .watcher
            .offsets_for_times(self.ends.clone(), Duration::from_secs(5))
        {
            Ok(found) => found
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(end) => end,
                    _ => 0,
                })
                .sum(),
            Err(_) => 0,
        };
        usize::try_from(total).unwrap_or(0)
    }
}

/// The CPU seconds (user and system, all threads) the process `pid` (or `self`) used so far, from
/// `/proc`; `None` where there is none.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start with the state, the third;
    // utime and stime are the 14th and 15th, in clock ticks.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks > 0.0).then(|| (user + system) / ticks)
}

/// The CPU seconds `pid` (or `self`) used since it had used `then`; NaN where either is unknown.
pub fn cpu_used_since(pid: &str, then: Option<f64>) -> f64 {
    match (then, cpu_seconds(pid)) {
        (Some(then), Some(now)) => now - then,
        _ => f64::NAN,
    }
}

/// A process's peak resident set (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_this_process_s_work() {
        let before = cpu_seconds("self").expect("/proc/self/stat is readable");
        // A few hundred milliseconds of work on any machine these tests run on.
        let mut x = 0u64;
        for _ in 0..300_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = cpu_seconds("self").expect("/proc/self/stat is readable") - before;
        assert!(
            (0.05..60.0).contains(&used),
            "300 million multiplications counted as {used} CPU seconds"
        );
    }

    #[test]
    fn cpu_seconds_of_no_such_process_is_none() {
        assert_eq!(cpu_seconds("0"), None);
    }
}
