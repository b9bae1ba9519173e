//! The cluster's life: initdb, the log, a leftover server, pg_ctl start, and the watchdog that
//! stops the cluster when this process dies without stopping it.

use super::*;

impl EmbeddedPostgres {
    /// `initdb` into `pg.init`, then rename it to `pg`, so a half-made cluster is never taken for one.
    pub(crate) fn init_cluster(&self, data_dir: &Path, ephemeral: bool) -> Result<(), EmbeddedError> {
        if self.pg_dir.exists() {
            let empty = fs::read_dir(&self.pg_dir)
                .context(|| format!("reading {}", self.pg_dir.display()))?
                .next()
                .is_none();
            if !empty {
                return Err(EmbeddedError::Unusable(format!(
                    "{} exists but is not a PostgreSQL cluster (no PG_VERSION); move it away",
                    self.pg_dir.display()
                )));
            }
            fs::remove_dir(&self.pg_dir).context(|| format!("removing empty {}", self.pg_dir.display()))?;
        }
        let init_dir = data_dir.join("pg.init");
        if init_dir.exists() {
            // Left by an initdb that was interrupted.
            fs::remove_dir_all(&init_dir).context(|| format!("removing {}", init_dir.display()))?;
        }
        fs::create_dir(&init_dir).context(|| format!("creating {}", init_dir.display()))?;
        fs::set_permissions(&init_dir, fs::Permissions::from_mode(0o700))
            .context(|| format!("setting permissions of {}", init_dir.display()))?;
        self.give_to_run_as(&init_dir)?;

        // initdb reads the password from a file, which the user it runs as must be able to read.
        let pwfile = data_dir.join("pg-password.init");
        write_private_file(&pwfile, &self.password)?;
        self.give_to_run_as(&pwfile)?;

        tracing::info!(pg_dir = %self.pg_dir.display(), "creating the embedded PostgreSQL cluster (first start)");
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&init_dir)
            .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()));
        if ephemeral {
            cmd.arg("--no-sync");
        }
        let output = run(&mut cmd, "initdb");
        let _ = fs::remove_file(&pwfile);
        check("initdb", &output?)?;

        let mut settings = String::from(
            "\n# Added by hotpatchd: the embedded server listens on 127.0.0.1 only (the port is chosen at\n\
             # each start) and makes no Unix socket.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n",
        );
        if ephemeral {
            settings.push_str(
                "# A throw-away test cluster: durability is not needed.\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
            );
        }
        let conf = init_dir.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .context(|| format!("writing {}", conf.display()))?;
        fs::rename(&init_dir, &self.pg_dir)
            .context(|| format!("renaming {} to {}", init_dir.display(), self.pg_dir.display()))?;
        Ok(())
    }

    /// The server log must be writable by the user the server runs as.
    pub(crate) fn prepare_log(&self, log: &Path) -> Result<(), EmbeddedError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
            .context(|| format!("creating {}", log.display()))?;
        self.give_to_run_as(log)
    }

    /// A previous process that was killed may have left its server running (the watchdog stops it
    /// within a second or so, but we may be quicker): we hold the lock, so nobody else owns it.
    pub(crate) fn stop_leftover_server(&self) -> Result<(), EmbeddedError> {
        if !self.pg_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let status = self.pg_ctl(&["status"])?;
        if !status.status.success() {
            // Not running: a stale postmaster.pid, which postgres itself clears on start.
            return Ok(());
        }
        tracing::warn!(pg_dir = %self.pg_dir.display(), "stopping a PostgreSQL left running by a previous hotpatchd");
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        let fast = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", &timeout])?;
        if fast.status.success() {
            return Ok(());
        }
        let immediate = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", &timeout])?;
        check("pg_ctl stop", &immediate)
    }

    pub(crate) fn start_server(&mut self, log: &Path) -> Result<(), EmbeddedError> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port()?;
            let log_start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
            let output = self.pg_ctl(&[
                "start",
                "-w",
                "-t",
                &PG_CTL_TIMEOUT_SECS.to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &format!("-p {port}"),
            ])?;
            if output.status.success() {
                self.port = port;
                self.running = true;
                tracing::info!(pg_dir = %self.pg_dir.display(), port, "embedded PostgreSQL started");
                return Ok(());
            }
            let tail = log_tail(log, log_start, 20);
            // Someone took the port between our probe and the server's bind: try another.
            if tail.contains("could not bind") && attempt < ATTEMPTS {
                tracing::debug!(port, "port taken, retrying");
                continue;
            }
            let printed = output_text(&output);
            let tail = if tail.trim().is_empty() { printed } else { tail };
            return Err(EmbeddedError::Start { log: log.to_owned(), tail });
        }
        Err(EmbeddedError::Start { log: log.to_owned(), tail: "no free port found".into() })
    }

    /// A detached `sh` that waits for this process to end, then stops the server (and, for an
    /// ephemeral cluster, deletes the data directory). It runs as the current user, who may
    /// signal the server, in its own process group so a terminal's Ctrl-C does not reach it.
    pub(crate) fn spawn_watchdog(&self, data_dir: &Path, ephemeral: bool) -> Result<Child, EmbeddedError> {
        let postmaster = read_trimmed(&self.pg_dir.join("postmaster.pid"))
            .and_then(|s| s.lines().next().map(str::to_owned))
            .ok_or_else(|| EmbeddedError::Unusable("the server started but left no postmaster.pid".into()))?;
        let script = if ephemeral {
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -QUIT "$2" 2>/dev/null
i=0; while kill -0 "$2" 2>/dev/null && [ "$i" -lt 30 ]; do sleep 1; i=$((i+1)); done
rm -rf "$3""#
        } else {
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -INT "$2" 2>/dev/null"#
        };
        let mut path = OsString::from("/usr/local/bin:/usr/bin:/bin");
        if let Some(p) = std::env::var_os("PATH") {
            path.push(":");
            path.push(p);
        }
        Command::new("/bin/sh")
            .args(["-c", script, "hotpatchd-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(postmaster)
            .arg(data_dir)
            .env("PATH", path)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context(|| "starting the PostgreSQL watchdog (/bin/sh)".into())
    }

    pub(crate) fn stop_watchdog(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
