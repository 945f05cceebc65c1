//! A real HTTP proxy for the agent's proxy tests: Debian's `tinyproxy` (installed by
//! `scripts/testbed-install.sh`), started in the foreground on a free port with a generated
//! config that allows `CONNECT` only to the given ports. tinyproxy logs every request at
//! `LogLevel Connect`; [`Tinyproxy::connects`] reads the `CONNECT host:port` lines back.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{free_port, resolve_bin, spawn_listening, ManagedProcess};

/// A running `tinyproxy -d` with its config and log in a temp dir; killed on drop.
#[derive(Debug)]
pub struct Tinyproxy {
    _proc: ManagedProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy on 127.0.0.1, accepting clients from 127.0.0.1 and allowing `CONNECT`
    /// to `connect_ports` only.
    pub fn start(connect_ports: &[u16]) -> Result<Tinyproxy> {
        let bin = resolve_bin(
            "KRAWL_TINYPROXY_BIN",
            &["tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"],
            "install it with scripts/testbed-install.sh (apt-get install tinyproxy-bin)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("krawl-tinyproxy-")
            .tempdir()
            .context("creating tinyproxy temp dir")?;
        let log = dir.path().join("tinyproxy.log");
        let conf_path = |port: u16| dir.path().join(format!("tinyproxy-{port}.conf"));
        let make_cmd = |port: u16| -> Result<Command> {
            let mut conf = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n\
                 DisableViaHeader Yes\nLogLevel Connect\nLogFile \"{}\"\n",
                log.display()
            );
            for p in connect_ports {
                conf.push_str(&format!("ConnectPort {p}\n"));
            }
            let path = conf_path(port);
            std::fs::write(&path, conf).context("writing tinyproxy config")?;
            let mut cmd = Command::new(&bin);
            cmd.arg("-d").arg("-c").arg(path);
            Ok(cmd)
        };
        let (proc, port) = spawn_listening(
            "tinyproxy",
            &dir.path().join("tinyproxy.out"),
            free_port,
            make_cmd,
        )?;
        Ok(Tinyproxy {
            _proc: proc,
            port,
            dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    /// tinyproxy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The targets (`host:port`) of every `CONNECT` tinyproxy received, in order.
    pub fn connects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("): CONNECT ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// Every request line tinyproxy logged (`CONNECT ...`, `GET http://...`).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("): "))
            .filter(|(head, _)| head.contains("Request (file descriptor"))
            .map(|(_, rest)| rest.to_string())
            .collect()
    }
}
