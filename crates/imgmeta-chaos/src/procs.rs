//! Real `imgmeta` processes: the API and a supervisor that keeps N workers alive, as systemd or
//! Kubernetes would, so that a worker we kill (or that kills itself) comes back.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

/// Where the binary lives and what every process of one run shares.
#[derive(Debug, Clone)]
pub struct ProcConfig {
    pub binary: PathBuf,
    pub log_dir: PathBuf,
    /// `IMGMETA_*` settings common to the API and the workers of this run.
    pub env: BTreeMap<String, String>,
}

impl ProcConfig {
    fn command(&self, role: &str, extra: &BTreeMap<String, String>, log: &Path) -> Result<Command> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(role)
            .envs(&self.env)
            .envs(extra)
            .stdin(std::process::Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            // A harness that dies must not leave workers consuming from a queue nobody checks.
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// Runs one `imgmeta` command to its end and parses the JSON it prints on stdout;
/// `what` names the command in errors (with its stderr when it fails).
pub async fn json_output(command: &mut Command, what: &str) -> Result<serde_json::Value> {
    let output = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The API process and its base URL.
pub struct Api {
    child: Child,
    config: ProcConfig,
    addr: String,
    pub base: String,
}

impl Api {
    /// The API process's id (for reading its memory from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn start(config: &ProcConfig, addr: &str) -> Result<Self> {
        let api = Self {
            child: Self::spawn(config, addr)?,
            config: config.clone(),
            addr: addr.to_owned(),
            base: format!("http://{addr}"),
        };
        api.wait_healthy(Duration::from_secs(60)).await?;
        Ok(api)
    }

    fn spawn(config: &ProcConfig, addr: &str) -> Result<Child> {
        let mut extra = BTreeMap::new();
        extra.insert("IMGMETA_HTTP_ADDR".to_owned(), addr.to_owned());
        let log = config.log_dir.join("api.log");
        config
            .command("api", &extra, &log)?
            .spawn()
            .context("spawning imgmeta api")
    }

    /// SIGKILLs the API, waits `down`, and starts it again on the same address.
    pub async fn crash_and_restart(&mut self, down: Duration) -> Result<()> {
        self.child.kill().await?;
        sleep(down).await;
        self.child = Self::spawn(&self.config, &self.addr)?;
        self.wait_healthy(Duration::from_secs(60)).await
    }

    async fn wait_healthy(&self, within: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the API at {} did not become healthy in {within:?}",
            self.base
        )
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One supervised worker slot: its extra environment and the process now filling it.
struct Slot {
    extra: BTreeMap<String, String>,
    child: Option<Child>,
    restarts: u32,
}

/// Keeps every slot filled with a running `imgmeta worker`, restarting the ones that exit.
#[derive(Clone)]
pub struct Workers {
    config: Arc<ProcConfig>,
    slots: Arc<Mutex<Vec<Slot>>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Workers {
    /// Starts one worker per entry of `extras` (each entry is that slot's additional env).
    pub fn start(config: &ProcConfig, extras: Vec<BTreeMap<String, String>>) -> Result<Self> {
        let workers = Self {
            config: Arc::new(config.clone()),
            slots: Arc::new(Mutex::new(
                extras
                    .into_iter()
                    .map(|extra| Slot {
                        extra,
                        child: None,
                        restarts: 0,
                    })
                    .collect(),
            )),
            stop: Arc::new(tokio::sync::Notify::new()),
        };
        workers.fill(false)?;
        let supervisor = workers.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = supervisor.stop.notified() => return,
                    () = sleep(Duration::from_millis(200)) => {}
                }
                if let Err(e) = supervisor.fill(true) {
                    eprintln!("chaos: restarting a worker failed: {e:#}");
                }
            }
        });
        Ok(workers)
    }

    /// Spawns a process for every slot whose process has exited (or never started).
    fn fill(&self, count_restart: bool) -> Result<()> {
        let mut slots = self.slots.lock().expect("slots lock");
        for (i, slot) in slots.iter_mut().enumerate() {
            let alive = match slot.child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            };
            if alive {
                continue;
            }
            let log = self.config.log_dir.join(format!("worker-{i}.log"));
            let child = self
                .config
                .command("worker", &slot.extra, &log)?
                .spawn()
                .context("spawning imgmeta worker")?;
            if count_restart && slot.child.is_some() {
                slot.restarts += 1;
            }
            slot.child = Some(child);
        }
        Ok(())
    }

    /// The pids of the live workers, by slot.
    pub fn pids(&self) -> Vec<Option<u32>> {
        let slots = self.slots.lock().expect("slots lock");
        slots
            .iter()
            .map(|s| s.child.as_ref().and_then(Child::id))
            .collect()
    }

    /// SIGKILLs the worker in `slot` (the supervisor brings a new one up within 200 ms).
    pub fn kill(&self, slot: usize) -> Option<u32> {
        let mut slots = self.slots.lock().expect("slots lock");
        let child = slots.get_mut(slot)?.child.as_mut()?;
        let pid = child.id();
        // start_kill sends SIGKILL on Unix: no handler runs, exactly a crash or an OOM kill.
        let _ = child.start_kill();
        pid
    }

    /// SIGTERMs the worker in `slot`: a graceful shutdown, as a deploy or a scale-down sends.
    pub fn terminate(&self, slot: usize) -> Option<u32> {
        let pid = self.pids().get(slot).copied().flatten()?;
        signal(pid, "TERM").then_some(pid)
    }

    pub fn slots(&self) -> usize {
        self.slots.lock().expect("slots lock").len()
    }

    /// SIGKILLs the worker whose pid is `pid`; false if no slot holds it.
    pub fn kill_pid(&self, pid: u32) -> bool {
        let slot = self.pids().iter().position(|p| *p == Some(pid));
        slot.and_then(|s| self.kill(s)).is_some()
    }

    /// How many times the supervisor has replaced an exited worker, over all slots.
    pub fn restarts(&self) -> u32 {
        let slots = self.slots.lock().expect("slots lock");
        slots.iter().map(|s| s.restarts).sum()
    }

    pub fn restarts_of(&self, slot: usize) -> u32 {
        let slots = self.slots.lock().expect("slots lock");
        slots.get(slot).map_or(0, |s| s.restarts)
    }

    /// Stops supervising and kills every worker.
    pub async fn stop(self) {
        self.stop.notify_one();
        let children: Vec<Child> = {
            let mut slots = self.slots.lock().expect("slots lock");
            slots.iter_mut().filter_map(|s| s.child.take()).collect()
        };
        for mut child in children {
            let _ = child.kill().await;
        }
    }
}

/// Sends `SIG<name>` to `pid`; false if it could not be sent. tokio's Child can only SIGKILL;
/// the kill(1) command sends any signal by pid.
pub fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port that was free a moment ago (the OS picks it; we release it for the child).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The pid encoded in a worker id (`<host>-<pid>-<random>`), if it has that shape.
pub fn pid_of_worker_id(worker_id: &str) -> Option<u32> {
    let mut parts = worker_id.rsplitn(3, '-');
    let _random = parts.next()?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_is_read_from_a_worker_id_whose_host_has_dashes() {
        assert_eq!(pid_of_worker_id("my-host-name-4242-abcdef12"), Some(4242));
    }

    #[test]
    fn a_worker_id_without_a_pid_gives_none() {
        assert_eq!(pid_of_worker_id("worker"), None);
    }
}
