//! Running the `crmsync` binary from a test: a command with a clean environment (no
//! `RUST_LOG`, no `CRMSYNC_CONFIG`, no `APP_DATABASE_URL`, any HubSpot token), and a runner
//! that keeps the async runtime free while the binary works.

#![allow(dead_code)]

use assert_cmd::Command;

/// The binary, with the environment a test controls.
pub fn crmsync() -> Command {
    let mut c = Command::cargo_bin("crmsync").expect("binary built");
    c.env_remove("RUST_LOG")
        .env_remove("CRMSYNC_CONFIG")
        .env_remove("APP_DATABASE_URL")
        .env("HUBSPOT_ACCESS_TOKEN", "any-token");
    c
}

/// What one run printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` off the async runtime.
pub async fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    run_with(args, None, &[]).await
}

/// Runs the binary with `args` off the async runtime, in `dir` (when given) and with `envs`
/// set on top of the clean environment.
pub async fn run_with<I, S>(args: I, dir: Option<&std::path::Path>, envs: &[(&str, &str)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let dir = dir.map(std::path::Path::to_path_buf);
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut c = crmsync();
        if let Some(d) = dir {
            c.current_dir(d);
        }
        c.envs(envs).args(&args).output()
    })
    .await
    .expect("join")
    .expect("crmsync runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
