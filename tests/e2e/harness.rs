//! The e2e harness: starts the host on a free loopback port, runs cases sequentially with
//! panics caught, prints libtest-like lines and the closing "N passed, N failed".

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Case = fn(&Server);

pub struct Suite {
    cases: Vec<(&'static str, Case)>,
}

impl Suite {
    pub fn from_env() -> Self {
        Suite { cases: Vec::new() }
    }

    pub fn add(&mut self, name: &'static str, case: Case) {
        self.cases.push((name, case));
    }

    /// Runs the selected cases against our host; returns the process exit code.
    pub fn run(self) -> i32 {
        self.run_with(Server::start)
    }

    /// Runs the selected cases against the server `start` launches.
    pub fn run_with(self, start: impl FnOnce() -> Result<Server, String>) -> i32 {
        let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let selected: Vec<_> = self
            .cases
            .into_iter()
            .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
            .collect();
        let server = match start() {
            Ok(s) => s,
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                eprintln!("e2e: cannot start the server: {why}");
                println!("0 passed, {} failed", selected.len());
                return 1;
            }
            Err(why) => {
                eprintln!("e2e: skipped, cannot start the server: {why}");
                println!("0 passed, 0 failed, {} skipped", selected.len());
                return 0;
            }
        };
        println!("running {} e2e cases against {}", selected.len(), server.base);
        let (mut passed, mut failed) = (0, Vec::new());
        for (name, case) in selected {
            let t = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&server)));
            let secs = t.elapsed().as_secs_f32();
            match result {
                Ok(()) => {
                    println!("test {name} ... ok ({secs:.2} s)");
                    passed += 1;
                }
                Err(_) => {
                    println!("test {name} ... FAILED ({secs:.2} s)");
                    failed.push(name);
                }
            }
        }
        drop(server);
        if !failed.is_empty() {
            println!("failures: {}", failed.join(", "));
        }
        println!("{passed} passed, {} failed", failed.len());
        if failed.is_empty() { 0 } else { 1 }
    }
}

pub struct Server {
    pub base: String,
    child: Child,
}

pub fn env_path(name: &str) -> Result<PathBuf, String> {
    let p = std::env::var(name).map_err(|_| format!("{name} is not set"))?;
    let p = PathBuf::from(p);
    if p.exists() { Ok(p) } else { Err(format!("{name}={} does not exist", p.display())) }
}

impl Server {
    fn start() -> Result<Server, String> {
        // Short read timeout, so bad_input's slow-loris case sees stalled uploads dropped quickly.
        // `vad` is the voice activity detector (graph `vad/silero`) and `speaker` the speaker
        // encoder (graph `speaker/resemblyzer`), as `make serve` loads them.
        Server::start_with(&["base", "tiny.en", "vad", "speaker"], &["--read-timeout", "3"])
    }

    /// A host of its own serving `models`, with more command-line flags.
    pub fn start_with(models: &[&str], flags: &[&str]) -> Result<Server, String> {
        let bin = env_path("WHISPER_HOST_BIN")?;
        let component = env_path("WHISPER_COMPONENT")?;
        env_path("ORT_DYLIB_PATH")?;
        let wanted = models;
        let models = env_path("WHISPER_MODELS_DIR")?;
        for m in wanted {
            let graph = match *m {
                "vad" => "silero.onnx",
                "speaker" => "resemblyzer.onnx",
                _ => "decoder.onnx",
            };
            if !models.join(m).join(graph).exists() {
                return Err(format!("model {m} is missing in {}", models.display()));
            }
        }
        let addr = free_addr()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", &addr, "--component"])
            .arg(&component)
            .arg("--models")
            .arg(&models)
            .args(wanted.iter().flat_map(|m| ["--model", m]))
            .args(flags);
        Server::launch(cmd, &addr)
    }

    /// Starts `cmd` (a server that will listen on `addr`) and waits until `/ready` answers 200
    /// (our host answers `/health` at once and `/ready` when the models are loaded; on a stock
    /// host the component answers both).
    pub fn launch(mut cmd: Command, addr: &str) -> Result<Server, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
        let mut server = Server { base: format!("http://{addr}"), child };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("the server exited during start-up ({status})"));
            }
            if let Ok(r) = server.get("/ready") {
                if r.status == 200 {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err("the server was not ready (GET /ready) within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn get(&self, path: &str) -> Result<Reply, String> {
        self.send("GET", path, None, Vec::new())
    }

    /// A multipart POST: `parts` are (field, Some(file name) for files, bytes).
    pub fn post_form(&self, path: &str, parts: &[(&str, Option<&str>, Vec<u8>)]) -> Reply {
        let boundary = "e2e-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send("POST", path, Some(format!("multipart/form-data; boundary={boundary}")), body)
            .expect("request failed")
    }

    /// A POST of one file as the `file` field, plus text fields.
    pub fn transcribe(&self, path: &str, file: &str, fields: &[(&str, &str)]) -> Reply {
        let mut parts = vec![("file", Some(file_name(file)), fixture(file))];
        for (k, v) in fields {
            parts.push((k, None, v.as_bytes().to_vec()));
        }
        self.post_form(path, &parts)
    }

    pub fn send(&self, method: &str, path: &str, content_type: Option<String>, body: Vec<u8>) -> Result<Reply, String> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .new_agent();
        let url = format!("{}{}", self.base, path);
        let resp = match method {
            "GET" => agent.get(&url).call(),
            _ => {
                let mut req = agent.post(&url);
                if let Some(ct) = content_type {
                    req = req.header("content-type", ct);
                }
                req.send(&body[..])
            }
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut bytes = Vec::new();
        resp.into_body().into_reader().read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(Reply { status, content_type, body: bytes })
    }
}

/// A free loopback address (`127.0.0.1:PORT`).
pub fn free_addr() -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    Ok(format!("127.0.0.1:{port}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, printing the body when it differs.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }
}

/// A clip under tests/fixtures/ (or an absolute path).
/// jfk.wav's samples repeated for `seconds`, as a WAV with jfk's own header (a long upload of
/// real speech, made in the test: 19 MiB for 10 minutes).
pub fn jfk_repeated_wav(seconds: usize) -> Vec<u8> {
    let wav = fixture("gen/jfk.wav");
    let at = wav_samples_at(&wav);
    let samples: Vec<u8> = wav[at..].iter().copied().cycle().take(2 * 16_000 * seconds).collect();
    let mut out = wav[..at].to_vec();
    out[at - 4..at].copy_from_slice(&(samples.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&((at - 8 + samples.len()) as u32).to_le_bytes());
    out.extend_from_slice(&samples);
    out
}

/// Where a WAV's samples start: after its `data` chunk's header.
pub fn wav_samples_at(wav: &[u8]) -> usize {
    wav.windows(4).position(|w| w == b"data").expect("data chunk") + 8
}

pub fn fixture(path: &str) -> Vec<u8> {
    let p = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
    };
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e} (run `make fixtures`)", p.display()))
}

pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Lower case, letters, digits and single spaces: for comparing transcripts across codecs.
pub fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
