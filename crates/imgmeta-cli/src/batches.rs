//! `imgmeta submit` and `imgmeta batches`: a client of the API's batches. A file of URLs (or
//! of JSON items) becomes one NDJSON batch, uploaded under an idempotency key made from its
//! contents so that running the command again does not submit it twice; `--wait` follows the
//! batch with a progress bar and writes its results, in line order, as they finish, and a run
//! interrupted and started again continues its `--output` file where it stopped.

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
    pub webhook_url: Option<String>,
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
    if let Some(url) = &args.webhook_url {
        query.push(("webhook_url", url.clone()));
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
    let (mut out, written): (Box<dyn Write>, i64) = match &args.output {
        Some(path) => {
            let (file, written) = resume(client, &id, path).await?;
            (Box::new(std::io::BufWriter::new(file)), written)
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout())), 0),
    };
    follow(client, &id, written, &mut out).await?;
    out.flush()?;
    Ok(())
}

/// Opens `--output` for the results of batch `id`. A file left by an earlier run of the same
/// command (interrupted; the batch is the same one, by its idempotency key) is continued after
/// its last complete line, its torn last line cut off; a file holding another batch's results
/// is refused rather than mixed; anything else is started afresh. Returns the file, positioned
/// for writing, and the last line it holds.
async fn resume(client: &Client, id: &str, path: &std::path::Path) -> Result<(std::fs::File, i64)> {
    let left = match earlier_results(path)? {
        Earlier::Found(left) => left,
        Earlier::Nothing => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            return Ok((file, 0));
        }
        Earlier::Foreign => bail!(
            "{} exists and does not hold batch results; remove it or choose another --output",
            path.display()
        ),
    };
    // The batch's own line, read back: its job must be the one the file names.
    let mut response = client
        .http
        .get(format!(
            "{}/v1/batches/{id}/results?after={}",
            client.base,
            left.job_line - 1
        ))
        .send()
        .await
        .context("reading the batch's results")?;
    let mut first = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        first.extend_from_slice(&chunk);
        if first.contains(&b'\n') {
            break;
        }
    }
    let end = first
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(first.len());
    let line: Value = serde_json::from_slice(&first[..end]).unwrap_or(Value::Null);
    if line["job"]["id"].as_str() != Some(left.job_id.as_str()) {
        bail!(
            "{} holds results of another batch; remove it or choose another --output",
            path.display()
        );
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_len(left.complete_bytes)?;
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
    eprintln!(
        "{}: continuing after line {} written by an earlier run",
        path.display(),
        left.last_line
    );
    Ok((file, left.last_line))
}

/// What an earlier run left in an output file.
#[derive(Debug, PartialEq)]
struct EarlierResults {
    /// Bytes of whole result lines (a torn last line is not counted).
    complete_bytes: u64,
    /// The batch line of the last whole result line.
    last_line: i64,
    /// The last whole result line that names a job: its batch line and job id.
    job_line: i64,
    job_id: String,
}

/// What an output file holds before a run writes to it.
#[derive(Debug, PartialEq)]
enum Earlier {
    /// No file, an empty one, or result lines none of which names a job (so the batch they
    /// belong to cannot be told; they are written afresh).
    Nothing,
    /// Lines that are not batch results: never overwritten.
    Foreign,
    Found(EarlierResults),
}

/// Reads what an earlier run wrote to `path`.
fn earlier_results(path: &std::path::Path) -> Result<Earlier> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Earlier::Nothing),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let (mut complete_bytes, mut last_line, mut job) = (0_u64, 0_i64, None);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let number = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|v| Some((v["line"].as_i64()?, v)));
        let Some((number, value)) = number else {
            return Ok(Earlier::Foreign);
        };
        complete_bytes += read as u64;
        last_line = number;
        if let Some(job_id) = value["job"]["id"].as_str() {
            job = Some((number, job_id.to_owned()));
        }
    }
    Ok(match job {
        Some((job_line, job_id)) => Earlier::Found(EarlierResults {
            complete_bytes,
            last_line,
            job_line,
            job_id,
        }),
        None => Earlier::Nothing,
    })
}

/// Shows progress until the batch has ended, writing its result lines in line order as soon as
/// every line before them has finished.
/// `written`: the last line already written (by an earlier run).
async fn follow(client: &Client, id: &str, written: i64, out: &mut dyn Write) -> Result<()> {
    let progress = Progress::new();
    let mut written = written;
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
    fn an_earlier_output_is_continued_after_its_last_whole_line_and_anything_else_left_alone() {
        let dir = std::env::temp_dir().join(format!("imgmeta-earlier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.ndjson");
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            earlier_results(&path).unwrap()
        };
        let rejected = "{\"line\":1,\"error\":{\"code\":\"invalid_url\"}}\n";
        let job = "{\"line\":2,\"job\":{\"id\":\"j2\"}}\n";
        assert_eq!(read(""), Earlier::Nothing);
        assert_eq!(read(rejected), Earlier::Nothing, "no job names the batch");
        let torn = format!("{rejected}{job}{{\"line\":3,\"jo");
        assert_eq!(
            read(&torn),
            Earlier::Found(EarlierResults {
                complete_bytes: (rejected.len() + job.len()) as u64,
                last_line: 2,
                job_line: 2,
                job_id: "j2".to_owned(),
            })
        );
        let then_rejected = format!("{job}{}", rejected.replace(":1,", ":3,"));
        match read(&then_rejected) {
            Earlier::Found(found) => assert_eq!((found.last_line, found.job_line), (3, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(read("http://a.example/1.jpg\n"), Earlier::Foreign);
        assert_eq!(read(&format!("{job}not json\n")), Earlier::Foreign);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(earlier_results(&path).unwrap(), Earlier::Nothing);
    }

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
