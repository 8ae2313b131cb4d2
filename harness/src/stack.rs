//! A private PC/SC stack for tests: its own pcscd in its own mount namespace, with vpcd on a
//! free port pair, so tests never touch (or depend on) a system pcscd (pcsc.md §1.1, §6, §7).
//!
//! pcscd ignores `PCSCLITE_CSOCK_NAME`: its socket path is fixed, so it runs with a scratch
//! folder bind-mounted over `/run/pcscd`; clients find it through `PCSCLITE_CSOCK_NAME` (which
//! callers set on the child processes they start). `setpriv --pdeathsig TERM` ties pcscd's
//! life to the thread that started it, which parks for the life of the process: when the test
//! process ends, pcscd gets SIGTERM and removes its socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The vpcd IFD handler of Debian's vsmartcard-vpcd package.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
pub const PCSCD: &str = "/usr/sbin/pcscd";

/// A running private pcscd.
#[derive(Debug)]
pub struct PrivateStack {
    pub dir: PathBuf,
    /// vpcd port of reader "Virtual PCD 00 00"; "00 01" is `port + 1`.
    pub port: u16,
    pub pid: u32,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Why a private pcscd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// What this machine lacks ([`missing_prerequisite`]).
    #[error("{0}")]
    Missing(String),
    #[error("no free port pair")]
    NoFreePort,
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot start pcscd: {0}")]
    Spawn(std::io::Error),
    #[error("pcscd did not start")]
    NotStarted,
    #[error("pcscd did not come up; its log:\n{0}")]
    NotUp(String),
    #[error("vpcd port {0} taken")]
    PortTaken(u16),
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Why a private stack cannot run here, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    if !Path::new(PCSCD).is_file() {
        return Some(format!("{PCSCD} not installed (apt-get install pcscd)"));
    }
    if !Path::new(VPCD_DRIVER).is_file() {
        return Some(format!("{VPCD_DRIVER} not installed (apt-get install vsmartcard-vpcd)"));
    }
    for tool in ["unshare", "setpriv", "mount"] {
        if !on_path(tool) {
            return Some(format!("{tool} not found (util-linux)"));
        }
    }
    if !is_root() {
        return Some("a private pcscd needs root (a private mount namespace over /run/pcscd)".into());
    }
    None
}

fn port_pair_free(p: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok()
}

fn random_port() -> u16 {
    let mut b = [0u8; 2];
    if let Ok(mut rng) = firmalab_emulator::CardRng::from_os() {
        rand_core::Rng::fill_bytes(&mut rng, &mut b);
    }
    // Even ports in 20000..31999: below the ephemeral range.
    20_000 + (u16::from_be_bytes(b) % 6000) * 2
}

impl PrivateStack {
    /// The client socket to put in `PCSCLITE_CSOCK_NAME`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/pcscd.comm")
    }

    /// Reader name of slot 0 or 1.
    pub fn reader(slot: u8) -> String {
        format!("Virtual PCD 00 0{slot}")
    }

    /// vpcd address of slot 0 or 1 (loopback).
    pub fn vpcd_addr(&self, slot: u8) -> String {
        format!("127.0.0.1:{}", self.port + u16::from(slot))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pcscd.log")).unwrap_or_default()
    }

    /// Starts a private pcscd with two vpcd readers; retries on another port if vpcd could not
    /// bind (a taken port gives a pcscd with zero readers and no error).
    pub fn start() -> Result<Self, StackError> {
        Self::start_with(&[])
    }

    /// [`Self::start`] with extra pcscd flags (`--apdu`, `--debug`: its log then records
    /// every APDU, see [`Self::log`]).
    pub fn start_with(flags: &[&str]) -> Result<Self, StackError> {
        if let Some(why) = missing_prerequisite() {
            return Err(StackError::Missing(why));
        }
        remove_stale_folders();
        let mut last = StackError::NoFreePort;
        for _ in 0..5 {
            let port = (0..50).map(|_| random_port()).find(|p| port_pair_free(*p)).ok_or(StackError::NoFreePort)?;
            match Self::start_on_with(port, flags) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts a private pcscd on a given vpcd port pair (a restart on the same port). The
    /// port may still be held for a moment by the pcscd just stopped (or its vpcd's socket):
    /// retried for up to five seconds.
    pub fn start_on(port: u16) -> Result<Self, StackError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Self::start_on_with(port, &[]) {
                Err(StackError::PortTaken(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn start_on_with(port: u16, flags: &[&str]) -> Result<Self, StackError> {
        let dir = std::env::temp_dir().join(format!("firmalab-pcsc-{}-{port}", std::process::id()));
        let io = |source: std::io::Error| StackError::Io { path: dir.clone(), source };
        std::fs::create_dir_all(dir.join("run")).map_err(io)?;
        std::fs::create_dir_all(dir.join("conf")).map_err(io)?;
        std::fs::create_dir_all("/run/pcscd")
            .map_err(|source| StackError::Io { path: PathBuf::from("/run/pcscd"), source })?;
        std::fs::write(
            dir.join("conf/vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:{port}\nLIBPATH {VPCD_DRIVER}\nCHANNELID {port}\n"
            ),
        )
        .map_err(io)?;
        let log = std::fs::File::create(dir.join("pcscd.log")).map_err(io)?;
        let script = format!(
            "mount --bind '{}' /run/pcscd && exec {PCSCD} --foreground {} -c '{}'",
            dir.join("run").display(),
            flags.join(" "),
            dir.join("conf").display()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = Command::new("setpriv")
                .args(["--pdeathsig", "TERM", "unshare", "--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
                .stderr(Stdio::from(log))
                .spawn();
            match child {
                Ok(mut c) => {
                    let _ = tx.send(Ok(c.id()));
                    // This thread must outlive pcscd: PDEATHSIG fires when it exits.
                    let _ = c.wait();
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(StackError::Spawn(e)));
                }
            }
        });
        let pid = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| StackError::NotStarted)??;
        let stack = PrivateStack { dir, port, pid };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stack.socket().exists() {
            if !Path::new(&format!("/proc/{pid}")).exists() || Instant::now() > deadline {
                return Err(StackError::NotUp(stack.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stack.log().contains("Address already in use") {
            stack.stop();
            return Err(StackError::PortTaken(port));
        }
        Ok(stack)
    }

    /// Stops pcscd (SIGTERM; it removes its socket) and waits up to five seconds for it to
    /// exit, so its ports are free when this returns; then removes its folder (configuration
    /// and log: read [`Self::log`] before stopping). A pcscd that did not exit keeps its folder.
    pub fn stop(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let proc = format!("/proc/{}", self.pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&proc).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !Path::new(&proc).exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the folders of private stacks whose process is gone (`firmalab-pcsc-PID-PORT` in
/// the temporary folder, PID no longer running): a stack a process never stopped, such as the
/// one a test binary shares between its tests, is removed by the next process that starts one.
/// Folders of running processes, and folders this user may not remove, are left alone.
fn remove_stale_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("firmalab-pcsc-")) else { continue };
        let Some((pid, port)) = rest.split_once('-') else { continue };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(port) || pid == std::process::id().to_string() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_folder_of_a_process_that_is_gone_is_removed_and_one_of_a_running_process_kept() {
        // No pid reaches 4 999 999 (Linux's pid_max is at most 4 194 304); pid 1 always runs.
        let gone = std::env::temp_dir().join("firmalab-pcsc-4999999-20000");
        let running = std::env::temp_dir().join("firmalab-pcsc-1-20000");
        let other = std::env::temp_dir().join("firmalab-pcsc-4999999-notaport");
        for d in [&gone, &running, &other] {
            std::fs::create_dir_all(d.join("run")).unwrap();
        }
        remove_stale_folders();
        assert!(!gone.exists(), "the folder of a process that is gone is removed");
        assert!(running.exists(), "pid 1 runs: its folder stays");
        assert!(other.exists(), "not a stack folder's name: left alone");
        for d in [&running, &other] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
