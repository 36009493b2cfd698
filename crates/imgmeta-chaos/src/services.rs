//! Stopping and starting the machine's RabbitMQ and PostgreSQL, and the guard that always
//! brings them back: other tests and people on this machine share them.

use anyhow::{Context, Result, bail};
use std::process::Command;
use std::time::Duration;
use tokio::time::{Instant, sleep};

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn run_async(program: &'static str, args: Vec<String>) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(program, &args)
    })
    .await?
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

pub fn rabbit_running() -> bool {
    Command::new("rabbitmq-diagnostics")
        .args(["-q", "check_running"])
        .output()
        .is_ok_and(|o| o.status.success())
        && port_open(5672)
}

pub async fn rabbit_stop_app() -> Result<()> {
    run_async("rabbitmqctl", vec!["stop_app".into()]).await?;
    Ok(())
}

pub async fn rabbit_start_app() -> Result<()> {
    run_async("rabbitmqctl", vec!["start_app".into()]).await?;
    wait_rabbit(Duration::from_secs(120)).await
}

/// Evaluates an Erlang expression in the broker (`rabbitmqctl eval`); returns the printed
/// term, trimmed.
async fn rabbit_eval(expression: &str) -> Result<String> {
    let out = run_async("rabbitmqctl", vec!["eval".into(), expression.into()]).await?;
    Ok(out.trim().to_owned())
}

/// SIGKILLs the broker's Erlang VM by its own pid (no clean shutdown, like a crash).
pub async fn rabbit_kill() -> Result<u32> {
    let out = rabbit_eval("os:getpid().").await?;
    let pid: u32 = out
        .trim_matches('"')
        .parse()
        .with_context(|| format!("reading the broker pid from {out:?}"))?;
    run_async("kill", vec!["-9".into(), pid.to_string()]).await?;
    Ok(pid)
}

pub async fn rabbit_start_server() -> Result<()> {
    if !port_open(5672) {
        // -detached returns at once; a server that is already starting refuses a second one.
        let _ = run_async("rabbitmq-server", vec!["-detached".into()]).await;
    }
    wait_rabbit(Duration::from_secs(120)).await
}

async fn wait_rabbit(within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::task::spawn_blocking(rabbit_running).await? {
            return Ok(());
        }
        sleep(Duration::from_millis(500)).await;
    }
    bail!("RabbitMQ was not running again within {within:?}")
}

fn pg_version() -> Result<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort();
    versions.pop().context("no cluster under /etc/postgresql")
}

fn pg_ctl(action: &str) -> Result<()> {
    let version = pg_version()?;
    run(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", action],
    )?;
    Ok(())
}

pub async fn postgres_restart() -> Result<()> {
    tokio::task::spawn_blocking(|| pg_ctl("restart")).await??;
    wait_postgres(Duration::from_secs(60)).await
}

/// Terminates every backend connected to `database` (the service's connections), as a
/// failover or an administrator would.
pub async fn postgres_terminate(database: &str) -> Result<u32> {
    let sql = format!(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = '{database}' and pid <> pg_backend_pid()"
    );
    let out = run_async(
        "psql",
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-U".into(),
            "postgres".into(),
            "-Atc".into(),
            sql,
        ],
    )
    .await?;
    Ok(out.trim().parse().unwrap_or(0))
}

async fn wait_postgres(within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let ok = tokio::task::spawn_blocking(|| {
            run(
                "psql",
                &["-h", "127.0.0.1", "-U", "postgres", "-Atc", "select 1"],
            )
            .is_ok()
        })
        .await?;
        if ok {
            return Ok(());
        }
        sleep(Duration::from_millis(300)).await;
    }
    bail!("PostgreSQL did not answer again within {within:?}")
}

/// The broker's memory high watermark, as `rabbitmqctl set_vm_memory_high_watermark` takes
/// it (a fraction of the machine's memory, or `absolute <bytes>`).
pub async fn rabbit_memory_watermark() -> Result<String> {
    let value = rabbit_eval("vm_memory_monitor:get_vm_memory_high_watermark().").await?;
    // `{absolute,Bytes}` for an absolute limit, a float for a fraction.
    Ok(match value.strip_prefix("{absolute,") {
        Some(bytes) => format!("absolute {}", bytes.trim_end_matches('}')),
        None => value,
    })
}

/// Sets the broker's memory high watermark; a tiny one raises the memory alarm at once, which
/// blocks every publishing connection until the alarm clears.
pub async fn rabbit_set_memory_watermark(value: &str) -> Result<()> {
    let value = value.to_owned();
    tokio::task::spawn_blocking(move || set_memory_watermark(&value)).await?
}

fn set_memory_watermark(value: &str) -> Result<()> {
    let mut args = vec!["set_vm_memory_high_watermark"];
    args.extend(value.split_whitespace());
    run("rabbitmqctl", &args)?;
    Ok(())
}

/// The broker's resource alarms, as Erlang terms (`[]` when none).
pub async fn rabbit_alarms() -> Result<String> {
    rabbit_eval("rabbit_alarm:get_alarms().").await
}

/// Puts the broker's memory watermark back when dropped (even when a scenario fails half-way).
pub struct WatermarkGuard(pub String);

impl Drop for WatermarkGuard {
    fn drop(&mut self) {
        if let Err(e) = set_memory_watermark(&self.0) {
            eprintln!(
                "chaos: restoring the memory watermark {} failed: {e:#}",
                self.0
            );
        }
    }
}

/// Brings both services back if they are down; runs when a scenario ends, whether it passed,
/// failed or panicked (Drop), so the machine is never left without them.
pub struct RestoreGuard;

impl RestoreGuard {
    pub fn restore_now() {
        if !port_open(5432) {
            eprintln!("chaos: PostgreSQL is down, starting it again");
            if let Err(e) = pg_ctl("start") {
                eprintln!("chaos: starting PostgreSQL failed: {e:#}");
            }
        }
        if !port_open(5672) {
            eprintln!("chaos: RabbitMQ is down, starting the server again");
            let _ = run("rabbitmq-server", &["-detached"]);
        } else if !rabbit_running() {
            eprintln!("chaos: the RabbitMQ app is stopped, starting it again");
            if let Err(e) = run("rabbitmqctl", &["start_app"]) {
                eprintln!("chaos: rabbitmqctl start_app failed: {e:#}");
            }
        }
        for _ in 0..120 {
            if port_open(5432) && rabbit_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("chaos: WARNING: services still not up after 60 s");
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        Self::restore_now();
    }
}

/// Drops a passing run's database, queues and exchanges (everything named with its prefix).
pub async fn drop_run_data(database: &str, prefix: &str) -> Result<()> {
    run_async(
        "psql",
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-U".into(),
            "postgres".into(),
            "-Atc".into(),
            format!("drop database if exists \"{database}\" with (force)"),
        ],
    )
    .await?;
    let mine = |name: &str| name.starts_with(&format!("{prefix}."));
    let queues = run_async(
        "rabbitmqctl",
        vec!["-q".into(), "list_queues".into(), "name".into()],
    )
    .await?;
    for queue in queues.lines().map(str::trim).filter(|q| mine(q)) {
        let _ = run_async("rabbitmqctl", vec!["delete_queue".into(), queue.to_owned()]).await;
    }
    let exchanges = run_async(
        "rabbitmqctl",
        vec!["-q".into(), "list_exchanges".into(), "name".into()],
    )
    .await?;
    let doomed: Vec<String> = exchanges
        .lines()
        .map(str::trim)
        .filter(|e| mine(e))
        .map(str::to_owned)
        .collect();
    if !doomed.is_empty() {
        let conn = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await?;
        let channel = conn.create_channel().await?;
        for exchange in doomed {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await;
        }
        let _ = conn.close(200, "done".into()).await;
    }
    Ok(())
}

/// Whether the broker's supervisor of at-least-once dead-letter workers is alive. When many
/// such workers exit within a second it gives up (`reached_max_restart_intensity`, cf.
/// rabbitmq-server issue 16652) and from then on no at-least-once quorum queue can elect a
/// leader: consumers get `INTERNAL_ERROR` until the app restarts. The service's queues use
/// that strategy, so a run on such a broker tests nothing.
pub async fn rabbit_dlx_supervisor_alive() -> Result<bool> {
    Ok(rabbit_eval("whereis(rabbit_fifo_dlx_sup).").await? != "undefined")
}

/// Restarts a broker whose dead-letter supervisor died (a few seconds' outage); returns a note
/// when it had to.
pub async fn repair_degraded_broker() -> Option<String> {
    match rabbit_dlx_supervisor_alive().await {
        Ok(true) | Err(_) => None,
        Ok(false) => {
            let stopped = rabbit_stop_app().await;
            let started = rabbit_start_app().await;
            Some(format!(
                "RabbitMQ's rabbit_fifo_dlx_sup was dead before this run (no at-least-once \
                 quorum queue could start); restarted the app: stop {stopped:?}, start {started:?}"
            ))
        }
    }
}
