//! `sluice bench`: measures the FileStream connectors against raw librdkafka clients on the embedded
//! broker, in one run, and prints the ratios and the workers' peak memory.
//!
//! The broker runs as a child `sluice broker` process and each Sluice worker as a child
//! `sluice standalone` process, so that a worker's peak RSS is its own and the raw clients, which run
//! in this process, do not share a heap with the broker's ever larger one. The baselines are a raw rdkafka producer writing the same lines and a
//! raw rdkafka consumer writing the same values to a file. The raw consumer and the sink read the same
//! topic, the raw producer's: the embedded broker answers a fetch with one producer batch per partition,
//! so a topic's batching sets how fast any consumer can read it.

// The benchmark measures wall time on real threads; it never runs simulated.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use sluice_core::kafka::rdkafka::CONSUMER_DEFAULTS;

/// Arguments of `sluice bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Lines in the input file.
    #[arg(long, default_value_t = 1_000_000)]
    lines: usize,
    /// Bytes per line, newline included.
    #[arg(long, default_value_t = 100)]
    line_bytes: usize,
    /// Partitions per topic: the embedded broker keeps at most about 5 MiB per partition and drops
    /// older data silently, so 1,000,000 lines of 100 bytes need 64.
    #[arg(long, default_value_t = 64)]
    partitions: i32,
    /// Rounds to run; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("benchmark I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("{0}")]
    Failed(String),
}

impl From<rdkafka::error::KafkaError> for BenchError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        BenchError::Kafka(e.to_string())
    }
}

impl From<sluice_core::kafka::KafkaError> for BenchError {
    fn from(e: sluice_core::kafka::KafkaError) -> Self {
        BenchError::Kafka(e.to_string())
    }
}

const SOURCE_TARGET: f64 = 0.8;
const SINK_TARGET: f64 = 0.8;
const RSS_TARGET_MB: f64 = 64.0;
/// How long any one phase may take before the benchmark gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// librdkafka's sticky partitioner fills one partition at a time, which can push a partition past the
/// embedded broker's retention; 0 spreads keyless records over the partitions one by one.
const SPREAD_EVENLY: &str = "0";

struct Round {
    raw_produce: Duration,
    sluice_source: Duration,
    raw_consume: Duration,
    sluice_sink: Duration,
    source_rss_mb: f64,
    sink_rss_mb: f64,
}

pub fn run(args: Args) -> Result<(), BenchError> {
    if args.line_bytes < 2 || args.lines == 0 || args.rounds == 0 || args.partitions < 1 {
        return Err(BenchError::Failed(
            "--lines, --rounds and --partitions must be positive and --line-bytes at least 2"
                .into(),
        ));
    }
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("input.txt");
    write_input(&input, args.lines, args.line_bytes)?;
    let topic_names = |round: usize| {
        [
            format!("bench-raw-{round}"),
            format!("bench-sluice-{round}"),
        ]
    };
    let topics: Vec<String> = (0..args.rounds).flat_map(topic_names).collect();
    let broker = Broker::start(&topics, args.partitions)?;
    let bootstrap = broker.bootstrap.clone();
    println!(
        "sluice bench: {} lines of {} bytes, {} partitions, embedded broker at {bootstrap}",
        args.lines, args.line_bytes, args.partitions
    );
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let [raw_topic, sluice_topic] = topic_names(round);
        let work = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&work)?;
        let bench = RoundSetup {
            bootstrap: &bootstrap,
            input: &input,
            work: &work,
            lines: args.lines,
            partitions: args.partitions,
        };
        let raw_produce = raw_produce(&bench, &raw_topic)?;
        let (sluice_source, source_rss_mb) = sluice_source(&bench, &sluice_topic)?;
        let raw_consume = raw_consume(&bench, &raw_topic)?;
        let (sluice_sink, sink_rss_mb) =
            sluice_sink(&bench, &raw_topic, (args.lines * args.line_bytes) as u64)?;
        let r = Round {
            raw_produce,
            sluice_source,
            raw_consume,
            sluice_sink,
            source_rss_mb,
            sink_rss_mb,
        };
        println!(
            "round {}: raw producer {:.3} s, sluice source {:.3} s ({:.2}x); raw consumer {:.3} s, sluice sink {:.3} s ({:.2}x); peak RSS source {:.1} MB, sink {:.1} MB",
            round + 1,
            r.raw_produce.as_secs_f64(),
            r.sluice_source.as_secs_f64(),
            ratio(r.raw_produce, r.sluice_source),
            r.raw_consume.as_secs_f64(),
            r.sluice_sink.as_secs_f64(),
            ratio(r.raw_consume, r.sluice_sink),
            r.source_rss_mb,
            r.sink_rss_mb,
        );
        rounds.push(r);
    }
    report(&rounds, args.lines)
}

fn report(rounds: &[Round], lines: usize) -> Result<(), BenchError> {
    let source = median(rounds.iter().map(|r| ratio(r.raw_produce, r.sluice_source)));
    let sink = median(rounds.iter().map(|r| ratio(r.raw_consume, r.sluice_sink)));
    let rss = rounds
        .iter()
        .map(|r| r.source_rss_mb.max(r.sink_rss_mb))
        .fold(0.0, f64::max);
    let rate = |d: Duration| lines as f64 / d.as_secs_f64() / 1e6;
    let med = |f: fn(&Round) -> Duration| {
        Duration::from_secs_f64(median(rounds.iter().map(|r| f(r).as_secs_f64())))
    };
    println!();
    println!(
        "source: sluice {:.2} M lines/s vs raw producer {:.2} M lines/s: ratio {source:.2} (target >= {SOURCE_TARGET})",
        rate(med(|r| r.sluice_source)),
        rate(med(|r| r.raw_produce)),
    );
    println!(
        "sink:   sluice {:.2} M lines/s vs raw consumer {:.2} M lines/s: ratio {sink:.2} (target >= {SINK_TARGET})",
        rate(med(|r| r.sluice_sink)),
        rate(med(|r| r.raw_consume)),
    );
    println!("peak RSS of a worker: {rss:.1} MB (target < {RSS_TARGET_MB} MB)");
    let mut missed = Vec::new();
    if source < SOURCE_TARGET {
        missed.push("source ratio");
    }
    if sink < SINK_TARGET {
        missed.push("sink ratio");
    }
    if rss >= RSS_TARGET_MB {
        missed.push("peak RSS");
    }
    if missed.is_empty() {
        println!("all targets met");
        Ok(())
    } else {
        Err(BenchError::Failed(format!(
            "targets missed: {}",
            missed.join(", ")
        )))
    }
}

fn ratio(baseline: Duration, measured: Duration) -> f64 {
    baseline.as_secs_f64() / measured.as_secs_f64()
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct RoundSetup<'a> {
    bootstrap: &'a str,
    input: &'a Path,
    work: &'a Path,
    lines: usize,
    partitions: i32,
}

fn write_input(path: &Path, lines: usize, line_bytes: usize) -> Result<(), BenchError> {
    let mut out = BufWriter::new(File::create(path)?);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut line = vec![b'x'; line_bytes];
    line[line_bytes - 1] = b'\n';
    for i in 0..lines {
        let digits = format!("{i:010}");
        let width = digits.len().min(line_bytes - 1);
        line[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
        for (j, byte) in line.iter_mut().enumerate().take(line_bytes - 1).skip(width) {
            *byte = alphabet[(i + j) % alphabet.len()];
        }
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(())
}

/// The baseline producer: reads the same file and writes every line as a record, until all are acked.
fn raw_produce(setup: &RoundSetup<'_>, topic: &str) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", setup.bootstrap)
        .set("enable.idempotence", "true")
        .set("sticky.partitioning.linger.ms", SPREAD_EVENLY)
        .create()?;
    let reader = BufReader::new(File::open(setup.input)?);
    for line in reader.split(b'\n') {
        let line = line?;
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&line[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(PHASE_LIMIT)?;
    Ok(started.elapsed())
}

/// The baseline consumer: a member of its own consumer group, as every sink task is, reading every
/// partition from the start and writing each value as a line; timed from its assignment until every
/// line is written to the file, as the sink is (the fsync that follows is not timed: the sink worker
/// does not fsync until its next offset commit).
fn raw_consume(setup: &RoundSetup<'_>, topic: &str) -> Result<Duration, BenchError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", setup.bootstrap)
        .set("group.id", format!("bench-raw-{topic}"));
    // The same client settings as a sink task's consumer.
    for (key, value) in CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer<AssignmentClock> =
        config.create_with_context(AssignmentClock::default())?;
    consumer.subscribe(&[topic])?;
    let file = File::create(setup.work.join("raw-out.txt"))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let waiting = Instant::now();
    let mut seen = 0;
    while seen < setup.lines {
        match consumer.poll(Duration::from_millis(100)) {
            Some(message) => {
                let message = message?;
                out.write_all(message.payload().unwrap_or_default())?;
                out.write_all(b"\n")?;
                seen += 1;
            }
            None if waiting.elapsed() > PHASE_LIMIT => {
                return Err(BenchError::Failed("the raw consumer timed out".into()));
            }
            None => {}
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    let done = Instant::now();
    // Leave nothing for the kernel to write back while the sink worker is timed.
    file.sync_data()?;
    let assigned = consumer.context().assigned.lock().ok().and_then(|at| *at);
    Ok(done - assigned.unwrap_or(waiting))
}

/// Notes when the group first assigned partitions: the moment the sink worker logs as "assigned".
#[derive(Default)]
struct AssignmentClock {
    assigned: Mutex<Option<Instant>>,
}

impl ClientContext for AssignmentClock {}

impl ConsumerContext for AssignmentClock {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(_), Ok(mut at)) = (rebalance, self.assigned.lock()) {
            at.get_or_insert_with(Instant::now);
        }
    }
}

/// FileStreamSource in a child worker, timed until the topic holds every line.
fn sluice_source(setup: &RoundSetup<'_>, topic: &str) -> Result<(Duration, f64), BenchError> {
    let connector = setup.work.join("source.properties");
    std::fs::write(
        &connector,
        format!(
            "name=bench-source\nconnector.class=FileStreamSource\nfile={}\ntopic={topic}\nbatch.size=2000\n",
            setup.input.display()
        ),
    )?;
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", setup.bootstrap)
        .create()?;
    // The end offsets of every partition in one ListOffsets request: the watcher must not load the
    // broker the worker is writing to (the raw producer has no watcher, it waits for its own acks).
    let mut ends = TopicPartitionList::with_capacity(setup.partitions as usize);
    for p in 0..setup.partitions {
        ends.add_partition_offset(topic, p, Offset::End)?;
    }
    let mut worker = spawn_worker(setup, "source", &connector, "source task started")?;
    // Timed from the task's start, as the raw producer is timed from its creation: starting a
    // process and reading its configuration is not moving data.
    let started = worker.ready()?;
    let result = wait_until(started, &mut worker.child, || {
        let total: i64 = match watcher.offsets_for_times(ends.clone(), Duration::from_secs(5)) {
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
        Ok(total as usize >= setup.lines)
    });
    worker.finish(result, started)
}

/// FileStreamSink in a child worker, timed from its partition assignment until the file is complete.
fn sluice_sink(
    setup: &RoundSetup<'_>,
    topic: &str,
    expected_bytes: u64,
) -> Result<(Duration, f64), BenchError> {
    let output = setup.work.join("sluice-out.txt");
    let connector = setup.work.join("sink.properties");
    std::fs::write(
        &connector,
        format!(
            "name=bench-sink\nconnector.class=FileStreamSink\nfile={}\ntopics={topic}\n",
            output.display()
        ),
    )?;
    let mut worker = spawn_worker(setup, "sink", &connector, "partitions assigned")?;
    // The consumer group's first join waits for the broker's initial rebalance delay; time from the
    // assignment, as the raw consumer's time starts at its assign().
    let assigned = worker.ready()?;
    let result = wait_until(assigned, &mut worker.child, || {
        Ok(std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0) >= expected_bytes)
    });
    worker.finish(result, assigned)
}

/// The embedded broker in a child `sluice broker` process, stopped when dropped.
struct Broker {
    child: Child,
    bootstrap: String,
}

impl Broker {
    /// Starts the broker with these topics and reads its bootstrap address.
    fn start(topics: &[String], partitions: i32) -> Result<Broker, BenchError> {
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

struct Worker {
    child: Child,
    /// When the worker logged its ready line.
    ready: mpsc::Receiver<Instant>,
}

impl Worker {
    /// Waits for the worker's ready line.
    fn ready(&mut self) -> Result<Instant, BenchError> {
        self.ready
            .recv_timeout(PHASE_LIMIT)
            .map_err(|_| BenchError::Failed("a worker never logged that it was ready".into()))
    }

    /// Reads the child's peak RSS, stops it with SIGTERM and returns the elapsed time since `from`.
    fn finish(
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

fn spawn_worker(
    setup: &RoundSetup<'_>,
    name: &str,
    connector: &Path,
    ready_line: &'static str,
) -> Result<Worker, BenchError> {
    let worker_file = setup.work.join(format!("{name}-worker.properties"));
    let offsets: PathBuf = setup.work.join(format!("{name}.offsets"));
    std::fs::write(
        &worker_file,
        format!(
            "bootstrap.servers={}\nkey.converter=org.apache.kafka.connect.storage.StringConverter\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\noffset.storage.file.filename={}\nproducer.sticky.partitioning.linger.ms={SPREAD_EVENLY}\n",
            setup.bootstrap,
            offsets.display()
        ),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("standalone")
        .arg(&worker_file)
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
    Ok(Worker { child, ready: rx })
}

/// Polls `done` until it holds; fails if the child exits first or the phase takes too long.
fn wait_until(
    from: Instant,
    child: &mut Child,
    mut done: impl FnMut() -> Result<bool, BenchError>,
) -> Result<Instant, BenchError> {
    loop {
        if done()? {
            return Ok(Instant::now());
        }
        if let Some(status) = child.try_wait()? {
            return Err(BenchError::Failed(format!(
                "a worker exited early with {status}"
            )));
        }
        if from.elapsed() > PHASE_LIMIT {
            return Err(BenchError::Failed("a worker did not finish in time".into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A process's peak resident set (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
