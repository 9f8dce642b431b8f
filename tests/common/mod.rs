//! The end-to-end harness: a scratch directory with worker and connector files, `sluice broker` and
//! `sluice standalone` as real child processes (stopped with SIGTERM or SIGKILL), and polling helpers
//! that fail with the workers' logs instead of sleeping and hoping.

// Every test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The wall clock: end-to-end tests wait for real processes, so nothing here is simulated.
fn now() -> Instant {
    #[allow(clippy::disallowed_methods)] // real processes run in real time
    Instant::now()
}

/// Polls `done` until it holds; after [`DEADLINE`] fails with `what` and the text of `context`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = now() + DEADLINE;
    while !done() {
        if now() >= deadline {
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits up to [`DEADLINE`] for `child` to exit; `None` if it still runs then.
pub fn wait_for_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll a child process") {
            return Some(status);
        }
        if now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Connector or worker configuration keys, written as `.properties` or as REST-API JSON.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Props(BTreeMap<String, String>);

impl Props {
    pub fn set(mut self, key: &str, value: impl ToString) -> Props {
        self.0.insert(key.to_owned(), value.to_string());
        self
    }

    pub fn remove(mut self, key: &str) -> Props {
        self.0.remove(key);
        self
    }

    fn to_properties(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
            .collect()
    }

    /// `{"name": ..., "config": {...}}`, as `POST /connectors` takes it.
    pub fn to_rest_json(&self) -> String {
        let mut config = self.0.clone();
        let name = config.remove("name").unwrap_or_default();
        format!(
            "{{\"name\": {}, \"config\": {}}}",
            serde_json::Value::from(name),
            serde_json::to_string_pretty(&config).expect("a map of strings is JSON")
        )
    }
}

/// A worker that keeps strings as they are and commits offsets twice a second, its REST API on a port
/// of its own (tests run side by side). Without `bootstrap`, the worker starts its own embedded broker.
pub fn worker_props(offsets: &Path, bootstrap: Option<&str>) -> Props {
    let props = Props::default()
        .set("listeners", "http://127.0.0.1:0")
        .set(
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        )
        .set(
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        )
        .set("offset.storage.file.filename", offsets.display())
        .set("offset.flush.interval.ms", 500);
    match bootstrap {
        Some(servers) => props.set("bootstrap.servers", servers),
        None => props,
    }
}

/// Shortens the sink consumers' session timeout (Kafka's default: 45 s) to 6 s. The embedded broker
/// waits almost a session timeout before it completes a rebalance after a member left or died, even
/// when the group is empty, so tests that stop, crash or restart group members would wait 44 s each
/// time; Kafka Connect users shorten it the same way, through the worker's `consumer.*` keys.
pub fn short_sessions(props: Props) -> Props {
    props
        .set("consumer.session.timeout.ms", 6_000)
        .set("consumer.heartbeat.interval.ms", 1_000)
}

/// A FileStreamSource connector tailing `input` into `topic`.
pub fn source_props(name: &str, input: &Path, topic: &str) -> Props {
    Props::default()
        .set("name", name)
        .set("connector.class", "FileStreamSource")
        .set("file", input.display())
        .set("topic", topic)
}

/// A FileStreamSink connector appending the values of `topics` to `output`.
pub fn sink_props(name: &str, output: &Path, topics: &str) -> Props {
    Props::default()
        .set("name", name)
        .set("connector.class", "FileStreamSink")
        .set("file", output.display())
        .set("topics", topics)
}

/// A test's scratch directory, removed when the test ends.
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new() -> Dir {
        Dir(tempfile::tempdir().expect("create a temporary directory"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub fn write_properties(&self, name: &str, props: &Props) -> PathBuf {
        self.write(name, props.to_properties())
    }

    pub fn write_json(&self, name: &str, props: &Props) -> PathBuf {
        self.write(name, props.to_rest_json())
    }
}

/// `count` distinct lines starting at number `from`, of varying length and content, each ending in `\n`.
pub fn numbered_lines(from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| {
            let padding = "x".repeat(i % 37);
            format!("line {i:06}\tpayload={padding} ünïcødé {}\n", i * 7919)
        })
        .collect()
}

/// Appends lines to a file (creating it), as a producing application would.
pub fn append(path: &Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all(lines.concat().as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Appends `lines` in chunks of `chunk` lines, pausing between chunks so a running worker reads them
/// while they are still being written.
pub fn append_gradually(path: &Path, lines: &[String], chunk: usize) {
    for part in lines.chunks(chunk) {
        append(path, part);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a file, each with its `\n`; none when the file does not exist yet.
pub fn read_lines(path: &Path) -> Vec<String> {
    match fs::read_to_string(path) {
        Ok(text) => text.split_inclusive('\n').map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// How many times each line occurs.
pub fn counts<'a>(lines: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Fails unless `actual` holds every line of `expected` exactly once, in any order.
pub fn assert_same_lines_once(actual: &[String], expected: &[String]) {
    let actual_counts = counts(actual);
    let missing: Vec<_> = expected
        .iter()
        .filter(|l| !actual_counts.contains_key(l.as_str()))
        .take(5)
        .collect();
    let repeated: Vec<_> = actual_counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .take(5)
        .collect();
    let expected_set: BTreeSet<_> = expected.iter().map(String::as_str).collect();
    let foreign: Vec<_> = actual
        .iter()
        .filter(|l| !expected_set.contains(l.as_str()))
        .take(5)
        .collect();
    assert!(
        missing.is_empty()
            && repeated.is_empty()
            && foreign.is_empty()
            && actual.len() == expected.len(),
        "expected each of {} lines exactly once, got {} lines; first missing: {missing:?}; \
         first repeated: {repeated:?}; first unexpected: {foreign:?}",
        expected.len(),
        actual.len(),
    )
}

/// Fails unless every line of `expected` occurs in `actual` (duplicates allowed) and nothing else does.
pub fn assert_every_line_at_least_once(actual: &[String], expected: &[String]) {
    let actual_set: BTreeSet<_> = actual.iter().map(String::as_str).collect();
    let expected_set: BTreeSet<_> = expected.iter().map(String::as_str).collect();
    let missing: Vec<_> = expected_set.difference(&actual_set).collect();
    let foreign: Vec<_> = actual_set.difference(&expected_set).take(5).collect();
    assert!(
        missing.is_empty() && foreign.is_empty(),
        "{} of {} input lines are missing from the output (first: {:?}); unexpected lines: {foreign:?}",
        missing.len(),
        expected.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
    );
}

/// `sluice broker`: the embedded broker in its own process, so topics outlive worker restarts.
pub struct Broker {
    child: Child,
    bootstrap: String,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker with `topics` (`NAME` or `NAME:PARTITIONS`) and reads its bootstrap address.
    pub fn start(dir: &Dir, topics: &[&str]) -> Broker {
        let log = dir.path("broker.log");
        let mut command = Command::new(SLUICE);
        command.arg("broker");
        for topic in topics {
            command.args(["--topic", topic]);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the broker log"))
            .spawn()
            .expect("start sluice broker");
        let mut first_line = String::new();
        let stdout = child.stdout.take().expect("broker stdout is piped");
        // The broker prints its address first; if it dies instead, stdout closes and this returns.
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("read the broker's address");
        let bootstrap = first_line.trim().to_owned();
        if bootstrap.is_empty() {
            let _ = child.kill();
            panic!(
                "sluice broker printed no address; its log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Broker {
            child,
            bootstrap,
            log,
        }
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            // Only the test stops its broker: say so if something else did, as workers then fail.
            eprintln!(
                "sluice broker exited during the test with {status}; its log:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which broker an end-to-end test runs against: `sluice broker` (librdkafka's mock cluster, the same
/// library as the worker's client) or Tansu (an independent implementation of the Kafka protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Embedded,
    Tansu,
}

/// A running broker of either kind.
pub enum TestBroker {
    Embedded(Broker),
    Tansu(sluice_sim::tansu::Tansu),
}

impl TestBroker {
    /// A broker of `kind` with `topics` (`NAME` or `NAME:PARTITIONS`). Fails the test if Tansu cannot
    /// start.
    pub fn start(kind: BrokerKind, dir: &Dir, topics: &[&str]) -> TestBroker {
        match kind {
            BrokerKind::Embedded => TestBroker::Embedded(Broker::start(dir, topics)),
            BrokerKind::Tansu => {
                let tansu = sluice_sim::tansu::Tansu::start()
                    .unwrap_or_else(|e| panic!("start Tansu: {e}"));
                create_topics(tansu.bootstrap(), topics);
                TestBroker::Tansu(tansu)
            }
        }
    }

    pub fn bootstrap(&self) -> &str {
        match self {
            TestBroker::Embedded(broker) => broker.bootstrap(),
            TestBroker::Tansu(tansu) => tansu.bootstrap(),
        }
    }
}

/// Creates `topics` (`NAME` or `NAME:PARTITIONS`) through Sluice's admin client.
fn create_topics(bootstrap: &str, topics: &[&str]) {
    use sluice_core::kafka::rdkafka::RdkafkaBackend;
    use sluice_core::kafka::{ClientSettings, KafkaBackend, NewTopic};
    let admin = RdkafkaBackend::new(bootstrap, ClientSettings::new())
        .admin()
        .expect("an admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for topic in topics {
        let (name, partitions) = match topic.split_once(':') {
            Some((name, n)) => (name, n.parse().expect("a partition count")),
            None => (*topic, 1),
        };
        let new = NewTopic {
            name: name.to_owned(),
            partitions,
            replication_factor: 1,
            config: BTreeMap::new(),
        };
        runtime
            .block_on(admin.create_topic(&new))
            .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    }
}

/// A `sluice standalone` process whose stderr (its log) goes to a file in the test's directory.
pub struct Worker {
    label: String,
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts `sluice standalone WORKER CONNECTOR...`; `label` names its log file (`<label>.log`).
    pub fn start(dir: &Dir, label: &str, worker: &Path, connectors: &[&Path]) -> Worker {
        Worker::start_with(dir, label, &[], worker, connectors)
    }

    /// Starts `sluice standalone FLAGS... WORKER CONNECTOR...`.
    pub fn start_with(
        dir: &Dir,
        label: &str,
        flags: &[&str],
        worker: &Path,
        connectors: &[&Path],
    ) -> Worker {
        let mut command = Command::new(SLUICE);
        command
            .arg("standalone")
            .args(flags)
            .arg(worker)
            .args(connectors);
        Worker::spawn(dir, label, command)
    }

    /// Starts `sluice standalone WORKER CONNECTOR...` unable to write files past `kib` KiB (its log
    /// included): a write crossing the limit is cut short, and the next fails with EFBIG ("File too
    /// large"), as a full disk fails a write with ENOSPC. Through bash, which ignores SIGXFSZ for it.
    pub fn start_with_file_size_limit(
        dir: &Dir,
        label: &str,
        kib: u64,
        worker: &Path,
        connectors: &[&Path],
    ) -> Worker {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(r#"trap '' XFSZ; ulimit -f "$0"; exec "$@""#)
            .arg(kib.to_string())
            .arg(SLUICE)
            .arg("standalone")
            .arg(worker)
            .args(connectors);
        Worker::spawn(dir, label, command)
    }

    fn spawn(dir: &Dir, label: &str, mut command: Command) -> Worker {
        let log = dir.path(&format!("{label}.log"));
        let child = command
            .env("NO_COLOR", "1")
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the worker log"))
            .spawn()
            .expect("start sluice standalone");
        Worker {
            label: label.to_owned(),
            child,
            log,
        }
    }

    /// The worker's log so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log, headed by the worker's label, for failure messages.
    pub fn report(&self) -> String {
        format!("--- log of {} ---\n{}", self.label, self.logs())
    }

    /// Fails if the worker has exited (a worker must run until it is stopped).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the worker") {
            panic!(
                "worker {} exited unexpectedly with {status}\n{}",
                self.label,
                self.report()
            );
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        wait_until(
            &format!("{needle:?} in the log of {}", self.label),
            || self.logs().contains(needle),
            || self.report(),
        );
    }

    /// The base URL of the worker's REST API (`http://127.0.0.1:PORT`), once it listens.
    pub fn rest_url(&self) -> String {
        self.rest_url_of("http")
    }

    /// The base URL of the worker's REST API served with `scheme` (`http`, `https`), once it listens.
    pub fn rest_url_of(&self, scheme: &str) -> String {
        let line = format!("REST API listening url={scheme}://");
        self.wait_for_log(&line);
        let logs = self.logs();
        let at = logs.find(&line).map(|i| i + line.len()).unwrap_or_default();
        let address: String = logs[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        format!("{scheme}://{address}")
    }

    /// Clean stop: SIGTERM, then the worker must exit 0 within the deadline. Returns its log.
    pub fn stop(self) -> String {
        self.stop_with("TERM")
    }

    /// Clean stop on signal `name` (`TERM`, `INT`, `HUP`): the worker must exit 0 within the deadline.
    /// Returns its log.
    pub fn stop_with(mut self, name: &str) -> String {
        self.assert_running();
        signal(self.child.id(), name);
        let status = self.wait_exit();
        let logs = self.logs();
        assert!(
            status.success(),
            "worker {} exited with {status} after SIGTERM\n{}",
            self.label,
            self.report()
        );
        assert!(
            !logs.contains("panicked"),
            "worker {} panicked\n{}",
            self.label,
            self.report()
        );
        logs
    }

    /// Sends signal `name` and returns at once.
    pub fn signal(&mut self, name: &str) {
        self.assert_running();
        signal(self.child.id(), name);
    }

    /// Waits until the worker exits (failing past `within`); its status and log.
    pub fn exit_within(mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the worker") {
                return (status, self.logs());
            }
            assert!(
                now() < deadline,
                "worker {} did not exit within {within:?}\n{}",
                self.label,
                self.report()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Hard crash: SIGKILL, no chance to flush or commit.
    pub fn crash(mut self) {
        self.assert_running();
        signal(self.child.id(), "KILL");
        self.wait_exit();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_for_exit(&mut self.child).unwrap_or_else(|| {
            panic!(
                "worker {} did not exit within {DEADLINE:?}\n{}",
                self.label,
                self.report()
            )
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A test that failed half-way must not leave workers behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// The log text of every worker, for failure messages.
pub fn reports(workers: &[&Worker]) -> String {
    workers
        .iter()
        .map(|w| w.report())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `path` has at least `n` lines, failing with the workers' logs.
pub fn wait_for_lines(path: &Path, n: usize, workers: &[&Worker]) {
    wait_until(
        &format!("{n} lines in {}", path.display()),
        || read_lines(path).len() >= n,
        || {
            format!(
                "it has {} lines\n{}",
                read_lines(path).len(),
                reports(workers)
            )
        },
    );
}

/// How a short-lived `sluice` command ended.
pub struct Exit {
    pub status: ExitStatus,
    pub stderr: String,
}

/// Runs `sluice ARGS...` to completion (it must exit within the deadline) and captures stderr.
pub fn run_to_exit(dir: &Dir, args: &[&Path]) -> Exit {
    let log = dir.path("run.stderr");
    let mut child = Command::new(SLUICE)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("create the stderr file"))
        .spawn()
        .expect("start sluice");
    let Some(status) = wait_for_exit(&mut child) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "sluice {args:?} was expected to exit but still ran after {DEADLINE:?}; stderr:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Exit {
        status,
        stderr: fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// Every `partitions assigned` event of `task` in a worker log, as partition numbers, in log order.
pub fn assignments(logs: &str, task: &str) -> Vec<BTreeSet<i32>> {
    let task_field = format!("task={task} ");
    logs.lines()
        .filter(|line| line.contains("partitions assigned") && line.contains(&task_field))
        .map(|line| {
            line.split("partition: ")
                .skip(1)
                .filter_map(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .collect()
        })
        .collect()
}

/// Runs `kcat ARGS...` to completion and returns its stdout.
pub fn kcat(dir: &Dir, args: &[&str]) -> String {
    let (stdout, stderr) = (dir.path("kcat.stdout"), dir.path("kcat.stderr"));
    let mut child = match Command::new("kcat")
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "kcat is not installed, and this test needs it as an independent Kafka client: \
             install the Debian package `kcat` (apt-get install kcat)"
        ),
        Err(e) => panic!("cannot run kcat: {e}"),
    };
    let Some(status) = wait_for_exit(&mut child) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kcat {args:?} did not finish within {DEADLINE:?}");
    };
    assert!(
        status.success(),
        "kcat {args:?} failed with {status}: {}",
        fs::read_to_string(&stderr).unwrap_or_default()
    );
    fs::read_to_string(&stdout).unwrap()
}

/// Consumes `topic` from the beginning to its current end; with `format` as kcat's `-f`.
pub fn consume(dir: &Dir, broker: &Broker, topic: &str, format: Option<&str>) -> String {
    let mut args = vec!["-C", "-b", broker.bootstrap(), "-t", topic];
    args.extend(["-o", "beginning", "-e", "-q"]);
    if let Some(format) = format {
        args.extend(["-f", format]);
    }
    kcat(dir, &args)
}
