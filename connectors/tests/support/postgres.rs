//! A real PostgreSQL server for tests: initdb and pg_ctl from the machine's PostgreSQL (Debian's
//! `postgresql` package), a cluster in a temporary directory, on a free local port, as an unprivileged
//! user (`postgres` when the tests run as root), stopped when dropped. Without PostgreSQL the test fails
//! and says what to install: it never skips.

// Each test binary that includes this file uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_user: Option<String>,
    /// The server takes TLS connections only.
    tls: bool,
}

/// The test certificates (`fixtures/tls/make.sh`): a CA, and a server certificate it signed for
/// 127.0.0.1 and localhost.
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tls")
        .join(name)
}

/// The newest PostgreSQL's programs on this machine.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl Postgres {
    /// Starts a new cluster; its superuser `sluice` connects without a password from localhost.
    pub fn start() -> Postgres {
        Postgres::launch(false)
    }

    /// Starts a new cluster that accepts TLS connections only, with the test server certificate.
    pub fn start_with_tls() -> Postgres {
        Postgres::launch(true)
    }

    fn launch(tls: bool) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .expect("a temporary directory");
        if tls {
            for (from, to) in [("server.crt", "server.crt"), ("server.key", "server.key")] {
                std::fs::copy(tls_fixture(from), dir.path().join(to)).expect("copy a certificate");
            }
            let key = dir.path().join("server.key");
            let mut permissions = std::fs::metadata(&key).expect("the key").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
            std::fs::set_permissions(&key, permissions).expect("the key's permissions");
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let as_user = root.then(|| "postgres".to_owned());
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot give {} to the postgres user",
                dir.path().display()
            );
        }
        let postgres = Postgres {
            bin,
            port: free_port(),
            as_user,
            dir,
            tls,
        };
        let data = postgres.data();
        postgres.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "sluice",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            postgres.port,
            postgres.dir.path().display()
        );
        if tls {
            let dir = postgres.dir.path().display();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ));
            // TCP connections must use TLS: one without it is refused, so a test that connects
            // proves it encrypted.
            std::fs::write(
                postgres.dir.path().join("data/pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("pg_hba.conf");
        }
        let log = postgres.dir.path().join("server.log");
        postgres.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        );
        postgres
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let output = match &self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&path)
                .args(args)
                .current_dir(self.dir.path())
                .output(),
            None => Command::new(&path)
                .args(args)
                .current_dir(self.dir.path())
                .output(),
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A `postgres://` URL of a database of this server.
    pub fn url(&self, database: &str) -> String {
        let tls = if self.tls { "?sslmode=require" } else { "" };
        format!("postgres://sluice@127.0.0.1:{}/{database}{tls}", self.port)
    }

    /// A new database, created empty.
    pub async fn database(&self, name: &str) -> String {
        let admin = sqlx::PgPool::connect(&self.url("postgres"))
            .await
            .expect("the server accepts connections");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match &self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&path)
                .args(args)
                .output(),
            None => Command::new(&path).args(args).output(),
        };
    }
}
