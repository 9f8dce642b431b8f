//! The FileStream benchmark: a FileStreamSource worker against a raw rdkafka producer writing the same
//! lines, and a FileStreamSink worker against a raw rdkafka consumer writing the same values to a file.
//!
//! The raw consumer and the sink read the same topic, the raw producer's: the embedded broker answers a
//! fetch with one producer batch per partition, so a topic's batching sets how fast any consumer can
//! read it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use sluice_core::kafka::rdkafka::CONSUMER_DEFAULTS;

use super::harness::{
    cpu_seconds, cpu_used_since, in_turn, median, median_duration, ratio, wait_until, worker_file,
    AssignmentClock, Broker, RawProducer, TopicEnds, Worker, PHASE_LIMIT,
};
use super::history::{record, verdict, Better, Entry, HistoryArgs};
use super::BenchError;

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

/// How often the watchers look.
const POLL: Duration = Duration::from_millis(2);
/// The workers at the raw clients' speed, in less memory than a JVM's heap alone.
const SOURCE_TARGET: f64 = 1.0;
const SINK_TARGET: f64 = 1.0;
const RSS_TARGET_MB: f64 = 25.0;

struct Round {
    raw_produce: Timed,
    sluice_source: Timed,
    raw_consume: Timed,
    sluice_sink: Timed,
    source_rss_mb: f64,
    sink_rss_mb: f64,
}

/// One side's run: how long it took and the CPU its process used meanwhile (all its threads, the
/// client library's among them; the broker's not).
#[derive(Clone, Copy)]
struct Timed {
    took: Duration,
    cpu_s: f64,
}

pub fn run(args: Args, history: &HistoryArgs) -> Result<(), BenchError> {
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
    let mut entry = Entry::new(
        "file",
        &[
            ("lines", args.lines.to_string()),
            ("line_bytes", args.line_bytes.to_string()),
            ("partitions", args.partitions.to_string()),
            ("rounds", args.rounds.to_string()),
        ],
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
        let (raw_produce, (sluice_source, source_rss_mb)) = in_turn(
            round,
            || raw_produce(&bench, &raw_topic),
            || sluice_source(&bench, &sluice_topic),
        )?;
        // Both read the raw producer's topic, written above whichever side went first.
        let (raw_consume, (sluice_sink, sink_rss_mb)) = in_turn(
            round,
            || raw_consume(&bench, &raw_topic),
            || sluice_sink(&bench, &raw_topic, (args.lines * args.line_bytes) as u64),
        )?;
        let r = Round {
            raw_produce,
            sluice_source,
            raw_consume,
            sluice_sink,
            source_rss_mb,
            sink_rss_mb,
        };
        println!(
            "round {}: raw producer {:.3} s (CPU {:.2} s), sluice source {:.3} s (CPU {:.2} s) ({:.2}x); raw consumer {:.3} s (CPU {:.2} s), sluice sink {:.3} s (CPU {:.2} s) ({:.2}x); peak RSS source {:.1} MB, sink {:.1} MB",
            round + 1,
            r.raw_produce.took.as_secs_f64(),
            r.raw_produce.cpu_s,
            r.sluice_source.took.as_secs_f64(),
            r.sluice_source.cpu_s,
            ratio(r.raw_produce.took, r.sluice_source.took),
            r.raw_consume.took.as_secs_f64(),
            r.raw_consume.cpu_s,
            r.sluice_sink.took.as_secs_f64(),
            r.sluice_sink.cpu_s,
            ratio(r.raw_consume.took, r.sluice_sink.took),
            r.source_rss_mb,
            r.sink_rss_mb,
        );
        rounds.push(r);
    }
    let missed = report(&rounds, args.lines, &mut entry);
    record(history, &entry)?;
    verdict(&missed)
}

/// Prints the medians and puts them in `entry`; returns the targets missed.
fn report(rounds: &[Round], lines: usize, entry: &mut Entry) -> Vec<&'static str> {
    let source = median(
        rounds
            .iter()
            .map(|r| ratio(r.raw_produce.took, r.sluice_source.took)),
    );
    let sink = median(
        rounds
            .iter()
            .map(|r| ratio(r.raw_consume.took, r.sluice_sink.took)),
    );
    // The CPU a side used per line, relative to its baseline's: above 1 costs more.
    let source_cpu = median(
        rounds
            .iter()
            .map(|r| r.sluice_source.cpu_s / r.raw_produce.cpu_s),
    );
    let sink_cpu = median(
        rounds
            .iter()
            .map(|r| r.sluice_sink.cpu_s / r.raw_consume.cpu_s),
    );
    let rss = rounds
        .iter()
        .map(|r| r.source_rss_mb.max(r.sink_rss_mb))
        .fold(0.0, f64::max);
    let rate = |d: Duration| lines as f64 / d.as_secs_f64() / 1e6;
    let med = |f: fn(&Round) -> Duration| median_duration(rounds, f);
    let cpu = |f: fn(&Round) -> f64| median(rounds.iter().map(f));
    println!();
    println!(
        "source: sluice {:.2} M lines/s vs raw producer {:.2} M lines/s: ratio {source:.2} (target >= {SOURCE_TARGET})",
        rate(med(|r| r.sluice_source.took)),
        rate(med(|r| r.raw_produce.took)),
    );
    println!(
        "sink:   sluice {:.2} M lines/s vs raw consumer {:.2} M lines/s: ratio {sink:.2} (target >= {SINK_TARGET})",
        rate(med(|r| r.sluice_sink.took)),
        rate(med(|r| r.raw_consume.took)),
    );
    println!(
        "CPU: source {:.2} s vs raw producer {:.2} s ({source_cpu:.2}x); sink {:.2} s vs raw consumer {:.2} s ({sink_cpu:.2}x)",
        cpu(|r| r.sluice_source.cpu_s),
        cpu(|r| r.raw_produce.cpu_s),
        cpu(|r| r.sluice_sink.cpu_s),
        cpu(|r| r.raw_consume.cpu_s),
    );
    println!("peak RSS of a worker: {rss:.1} MB (target <= {RSS_TARGET_MB} MB)");
    entry.figure("source_ratio", source, Better::Higher);
    entry.figure("sink_ratio", sink, Better::Higher);
    entry.speed("source_mlines_per_s", rate(med(|r| r.sluice_source.took)));
    entry.speed("sink_mlines_per_s", rate(med(|r| r.sluice_sink.took)));
    entry.figure("source_cpu_ratio", source_cpu, Better::Lower);
    entry.figure("sink_cpu_ratio", sink_cpu, Better::Lower);
    entry.figure("peak_rss_mb", rss, Better::Lower);
    let mut missed = Vec::new();
    if source < SOURCE_TARGET {
        missed.push("source ratio");
    }
    if sink < SINK_TARGET {
        missed.push("sink ratio");
    }
    if rss > RSS_TARGET_MB {
        missed.push("peak RSS");
    }
    missed
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

/// The baseline producer: reads the same file and writes every line as a record, until all are acked;
/// timed from a ready producer, as the source worker is from its task's start.
fn raw_produce(setup: &RoundSetup<'_>, topic: &str) -> Result<Timed, BenchError> {
    let producer = RawProducer::ready(setup.bootstrap, topic)?;
    let cpu = cpu_seconds("self");
    let started = Instant::now();
    let reader = BufReader::new(File::open(setup.input)?);
    for line in reader.split(b'\n') {
        let line = line?;
        while !producer.try_send(topic, &line)? {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let took = producer.acknowledged(started)?;
    Ok(Timed {
        took,
        cpu_s: cpu_used_since("self", cpu),
    })
}

/// The baseline consumer: a member of its own consumer group, as every sink task is, reading every
/// partition from the start and writing each value as a line; timed from its assignment until every
/// line is written to the file, as the sink is (the fsync that follows is not timed: the sink worker
/// does not fsync until its next offset commit).
fn raw_consume(setup: &RoundSetup<'_>, topic: &str) -> Result<Timed, BenchError> {
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
    let cpu_s = consumer.context().cpu_since_assigned();
    // Leave nothing for the kernel to write back while the sink worker is timed.
    file.sync_data()?;
    let assigned = consumer.context().assigned();
    Ok(Timed {
        took: done - assigned.unwrap_or(waiting),
        cpu_s,
    })
}

/// FileStreamSource in a child worker, timed until the topic holds every line.
fn sluice_source(setup: &RoundSetup<'_>, topic: &str) -> Result<(Timed, f64), BenchError> {
    let connector = setup.work.join("source.properties");
    std::fs::write(
        &connector,
        format!(
            "name=bench-source\nconnector.class=FileStreamSource\nfile={}\ntopic={topic}\nbatch.size=2000\n",
            setup.input.display()
        ),
    )?;
    let ends = TopicEnds::new(setup.bootstrap, topic, setup.partitions)?;
    let mut worker = spawn_worker(setup, "source", &connector, "source task started")?;
    // Timed from the task's start, as the raw producer is timed from its creation: starting a
    // process and reading its configuration is not moving data.
    let started = worker.ready()?;
    let result = ends.wait_for(started, &mut worker.child, setup.lines);
    finish(worker, result, started)
}

/// FileStreamSink in a child worker, timed from its partition assignment until the file is complete.
fn sluice_sink(
    setup: &RoundSetup<'_>,
    topic: &str,
    expected_bytes: u64,
) -> Result<(Timed, f64), BenchError> {
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
    let result = wait_until(assigned, &mut worker.child, POLL, || {
        Ok(std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0) >= expected_bytes)
    });
    finish(worker, result, assigned)
}

/// Stops a worker that finished (or failed) its phase; returns its run and its peak RSS.
fn finish(
    worker: Worker,
    result: Result<Instant, BenchError>,
    from: Instant,
) -> Result<(Timed, f64), BenchError> {
    let cpu_s = worker.cpu_since_ready();
    let (took, rss) = worker.finish(result, from)?;
    Ok((Timed { took, cpu_s }, rss))
}

fn spawn_worker(
    setup: &RoundSetup<'_>,
    name: &str,
    connector: &Path,
    ready_line: &'static str,
) -> Result<Worker, BenchError> {
    let worker_file = worker_file(
        setup.work,
        name,
        setup.bootstrap,
        "key.converter=org.apache.kafka.connect.storage.StringConverter\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\n",
    )?;
    Worker::spawn(&worker_file, connector, ready_line)
}
