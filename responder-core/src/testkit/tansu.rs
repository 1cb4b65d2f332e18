//! A real Kafka-protocol broker process for tests: Tansu with its SQLite storage
//! engine, started on a free loopback port in a fresh directory and killed on drop.
//!
//! The binary comes from `TANSU_BIN`, else from where `scripts/install-tansu` caches it
//! (`~/.cache/kafka-responder/tansu-<version>-libsql/bin/tansu`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The Tansu version the project pins.
pub const TANSU_VERSION: &str = "0.6.0";

/// A Tansu broker process.
#[derive(Debug)]
pub struct TansuBroker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    bootstrap: String,
    child: Option<Child>,
}

fn default_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home)
        .join(".cache/kafka-responder")
        .join(format!("tansu-{TANSU_VERSION}-libsql"))
        .join("bin/tansu")
}

impl TansuBroker {
    /// Starts a broker on a free loopback port with a fresh SQLite database.
    pub fn start() -> Result<Self, Error> {
        let bin = default_bin();
        if !bin.exists() {
            return Err(Error::config(format!(
                "tansu is not installed at {} (run scripts/install-tansu, or set TANSU_BIN)",
                bin.display()
            )));
        }
        let dir = std::env::temp_dir().join(super::unique_name("tansu"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::config(format!("creating {}: {e}", dir.display())))?;
        let port = super::free_ports(1)?[0];
        let mut broker = TansuBroker {
            bin,
            dir,
            port,
            bootstrap: format!("127.0.0.1:{port}"),
            child: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    /// The `bootstrap.servers` list.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Kills the broker process (SIGKILL) and starts it again on the same port and
    /// database: data, offsets and groups survive.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), Error> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .map_err(|e| Error::config(format!("opening tansu's log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::config(format!("opening tansu's log: {e}")))?;
        let child = Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| Error::config(format!("starting {}: {e}", self.bin.display())))?;
        self.child = Some(child);
        // Ready once it accepts connections on its port.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default();
                return Err(Error::config(format!(
                    "tansu exited at start ({status}): {log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::config("tansu did not listen within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds an index on the SQLite engine's header table. Tansu 0.6 reads a record's
    /// headers with a scan of that unindexed table, which slows every fetch as records
    /// accumulate (about 4 ms a record at 40,000 headers); tests that move more than a
    /// few thousand records call this after start. Uses Python's sqlite3 module.
    pub fn index_headers(&self) -> Result<(), Error> {
        let status = Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); \
                 c.execute('create index if not exists header_topition_offset \
                 on header (topition, offset_id)'); c.commit()",
            )
            .arg(self.dir.join("tansu.db"))
            .status()
            .map_err(|e| Error::config(format!("running python3 for sqlite: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::config("indexing tansu's header table failed"))
        }
    }

    /// Kills the broker process (SIGKILL), as a crash; [`restart`](Self::restart)
    /// brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
