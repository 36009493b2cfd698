//! `imgmeta submit` and `imgmeta batches`: a client of the API's batches. A file of URLs (or
//! of JSON items) becomes one NDJSON batch, uploaded under an idempotency key made from its
//! contents so that running the command again does not submit it twice; `--wait` follows the
//! batch with a progress bar and writes its results, in line order, as they finish.

use anyhow::{Context, Result, bail};
use imgmeta_config::Settings;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::time::Duration;

/// Where and as whom the commands talk to the API.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `--api` and `--key`, else `IMGMETA_API_URL` and `IMGMETA_KEY`.
    pub fn new(settings: &Settings, api: Option<String>, key: Option<String>) -> Result<Self> {
        let base = api
            .map(|a| a.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| settings.client.api_url.clone());
        let key = match key {
            Some(key) => key,
            None => settings
                .client
                .key
                .as_ref()
                .map(|k| k.expose_secret().to_owned())
                .context("no API key: pass --key or set IMGMETA_KEY")?,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .context("the API key is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { base, http })
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await.context("the API did not answer")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "the API answered {status}: {} ({})",
                body["error"]["message"].as_str().unwrap_or("no message"),
                body["error"]["code"].as_str().unwrap_or("no code")
            );
        }
        Ok(body)
    }

    async fn batch(&self, id: &str) -> Result<Value> {
        self.json(self.http.get(format!("{}/v1/batches/{id}", self.base)))
            .await
    }
}

/// What `imgmeta submit` was asked.
pub struct Submit {
    /// A file path, or `-` for standard input.
    pub input: String,
    pub tasks: Option<String>,
    pub min_score: Option<f64>,
    pub wait: bool,
    /// Where `--wait` writes the results (NDJSON); standard output when `None`.
    pub output: Option<std::path::PathBuf>,
}

/// Turns one input line into an NDJSON item: a JSON object is sent as it is, anything else is
/// a URL. Blank lines stay blank (the API skips them but counts their numbers, so line numbers
/// in the results are the file's).
fn item_line(line: &str) -> String {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        serde_json::json!({ "url": trimmed }).to_string()
    }
}

/// The NDJSON body for `input`'s lines.
fn ndjson_body(input: impl BufRead) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    for line in input.lines() {
        let line = line.context("reading the input")?;
        body.extend_from_slice(item_line(&line).as_bytes());
        body.push(b'\n');
    }
    Ok(body)
}

/// `imgmeta submit`: uploads the batch and prints it; with `--wait`, follows it to the end.
pub async fn submit(client: &Client, args: &Submit) -> Result<()> {
    let body = if args.input == "-" {
        ndjson_body(std::io::stdin().lock())?
    } else {
        let file =
            std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input))?;
        ndjson_body(std::io::BufReader::new(file))?
    };
    let mut query = Vec::new();
    if let Some(tasks) = &args.tasks {
        query.push(("tasks", tasks.clone()));
    }
    if let Some(score) = args.min_score {
        query.push(("min_score", score.to_string()));
    }
    // The same file with the same options is the same batch, however often it is submitted.
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(&query)?);
    digest.update(&body);
    let key = format!("imgmeta-submit-{}", hex::encode(digest.finalize()));
    let batch = client
        .json(
            client
                .http
                .post(reqwest::Url::parse_with_params(
                    &format!("{}/v1/batches", client.base),
                    &query,
                )?)
                .header("content-type", "application/x-ndjson")
                .header("idempotency-key", key)
                .body(body),
        )
        .await?;
    let id = batch["id"]
        .as_str()
        .context("the API answered no batch id")?
        .to_owned();
    if !args.wait {
        println!("{batch}");
        return Ok(());
    }
    eprintln!(
        "batch {id}: {} items, {} lines rejected",
        batch["counts"]["total"].as_i64().unwrap_or(0)
            - batch["counts"]["rejected"].as_i64().unwrap_or(0),
        batch["counts"]["rejected"]
    );
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    follow(client, &id, &mut out).await?;
    out.flush()?;
    Ok(())
}

/// Shows progress until the batch has ended, writing its result lines in line order as soon as
/// every line before them has finished.
async fn follow(client: &Client, id: &str, out: &mut dyn Write) -> Result<()> {
    let progress = Progress::new();
    let mut written = 0_i64;
    loop {
        let batch = client.batch(id).await?;
        progress.show(&batch);
        written = write_finished(client, id, written, out).await?;
        if batch["completed_at"].is_string() {
            // Whatever ended between the last read and the batch's end.
            write_finished(client, id, written, out).await?;
            progress.finish(&batch);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes the result lines after line `after` up to the first one still queued or running
/// (the rest of the stream is not read); the last line written.
async fn write_finished(client: &Client, id: &str, after: i64, out: &mut dyn Write) -> Result<i64> {
    let mut response = client
        .http
        .get(format!(
            "{}/v1/batches/{id}/results?after={after}",
            client.base
        ))
        .send()
        .await
        .context("reading the batch's results")?;
    if !response.status().is_success() {
        bail!(
            "reading the results: the API answered {}",
            response.status()
        );
    }
    let mut last = after;
    let mut pending: Vec<u8> = Vec::new();
    'stream: while let Some(chunk) = response.chunk().await? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: Value =
                serde_json::from_slice(&line).context("a result line is not JSON")?;
            if matches!(value["job"]["status"].as_str(), Some("queued" | "running")) {
                break 'stream;
            }
            out.write_all(&line)?;
            last = value["line"].as_i64().unwrap_or(last);
        }
    }
    out.flush()?;
    Ok(last)
}

/// The progress bar on standard error; a plain line every few seconds when standard error is
/// not a terminal (a log, a CI job), so progress is visible there too.
struct Progress {
    bar: Option<ProgressBar>,
    last_line: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} done, {msg} [{elapsed_precise}, ETA {eta}]",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self {
            bar,
            last_line: std::sync::Mutex::new(None),
        }
    }

    fn counts(batch: &Value) -> (u64, u64, u64, String) {
        let n = |k: &str| batch["counts"][k].as_u64().unwrap_or(0);
        let items = n("total") - n("rejected");
        let done = n("succeeded") + n("failed") + n("cancelled");
        let rate = batch["rate_per_s"]
            .as_f64()
            .map_or("-".to_owned(), |r| format!("{r:.1}/s"));
        (items, done, n("failed"), rate)
    }

    fn show(&self, batch: &Value) {
        let (items, done, failed, rate) = Self::counts(batch);
        match &self.bar {
            Some(bar) => {
                bar.set_length(items);
                bar.set_position(done);
                bar.set_message(format!("{failed} failed, {rate}"));
            }
            None => {
                let mut last = self.last_line.lock().expect("lock");
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    let eta = batch["eta_s"]
                        .as_f64()
                        .map_or("-".to_owned(), |s| format!("{s:.0} s"));
                    eprintln!("{done}/{items} done, {failed} failed, {rate}, ETA {eta}");
                    *last = Some(std::time::Instant::now());
                }
            }
        }
    }

    fn finish(&self, batch: &Value) {
        let (items, done, failed, rate) = Self::counts(batch);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "batch {}: {done}/{items} done, {failed} failed, {rate}",
            batch["status"].as_str().unwrap_or("ended")
        );
    }
}

/// `imgmeta batches list`.
pub async fn list(client: &Client) -> Result<()> {
    let page = client
        .json(
            client
                .http
                .get(format!("{}/v1/batches?limit=100", client.base)),
        )
        .await?;
    for batch in page["batches"].as_array().into_iter().flatten() {
        println!("{batch}");
    }
    Ok(())
}

/// `imgmeta batches show ID`.
pub async fn show(client: &Client, id: &str) -> Result<()> {
    println!("{}", client.batch(id).await?);
    Ok(())
}

/// `imgmeta batches cancel ID`.
pub async fn cancel(client: &Client, id: &str) -> Result<()> {
    let batch = client
        .json(
            client
                .http
                .delete(format!("{}/v1/batches/{id}", client.base)),
        )
        .await?;
    println!("{batch}");
    Ok(())
}

/// `imgmeta batches results ID`: the results stream, copied to standard output as it arrives.
pub async fn results(
    client: &Client,
    id: &str,
    status: Option<&str>,
    after: Option<i64>,
) -> Result<()> {
    let mut query = Vec::new();
    if let Some(status) = status {
        query.push(("status", status.to_owned()));
    }
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    let mut response = client
        .http
        .get(reqwest::Url::parse_with_params(
            &format!("{}/v1/batches/{id}/results", client.base),
            &query,
        )?)
        .send()
        .await
        .context("the API did not answer")?;
    if !response.status().is_success() {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        bail!(
            "the API answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await? {
        stdout.write_all(&chunk)?;
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_urls_or_items_and_blank_lines_keep_their_place() {
        let body = ndjson_body(
            "http://a.example/1.jpg\n\n{\"url\": \"http://a.example/2.jpg\", \"external_id\": \"x\"}\n  http://a.example/3.jpg  \n"
                .as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"url":"http://a.example/1.jpg"}"#,
                "",
                r#"{"url": "http://a.example/2.jpg", "external_id": "x"}"#,
                r#"{"url":"http://a.example/3.jpg"}"#,
            ]
        );
    }
}
