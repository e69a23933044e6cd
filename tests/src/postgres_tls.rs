//! A PostgreSQL cluster of the test's own with TLS on and plain text refused (`hostssl`
//! only), made with `initdb`/`pg_ctl` from the machine's PostgreSQL binaries, so the
//! machine's server is left as it is. Its certificate is for `db.coinslot.test`, signed by
//! a CA made for the test; a second CA signs nothing.
//!
//! Run as root (as CI is), the cluster runs as the `postgres` user: PostgreSQL refuses to
//! run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The name in the server's certificate.
pub const HOST_NAME: &str = "db.coinslot.test";

/// A running TLS-only PostgreSQL on 127.0.0.1.
pub struct TlsCluster {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_file: PathBuf,
    /// A CA that signed nothing here (PEM).
    pub other_ca_file: PathBuf,
    bin: PathBuf,
    data: PathBuf,
    owner: Option<String>,
    _dir: tempfile::TempDir,
}

impl TlsCluster {
    /// Makes and starts the cluster.
    pub fn start() -> anyhow::Result<TlsCluster> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir()?;
        let owner = running_as_root().then(|| "postgres".to_string());
        let port = crate::free_port();
        let (ca, ca_key) = new_ca("Coinslot test CA")?;
        let (other, _) = new_ca("Another CA")?;
        let server_key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![HOST_NAME.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, HOST_NAME);
        let server = params.signed_by(&server_key, &ca, &ca_key)?;

        let base_dir = dir.path().to_path_buf();
        let base = base_dir.as_path();
        let ca_file = base.join("ca.pem");
        let other_ca_file = base.join("other-ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        std::fs::write(&other_ca_file, other.pem())?;
        std::fs::write(base.join("server.crt"), server.pem())?;
        std::fs::write(base.join("server.key"), server_key.serialize_pem())?;
        set_mode(&base.join("server.key"), 0o600)?;
        let data = base.join("data");
        if let Some(user) = &owner {
            chown_to(base, user)?;
            for file in ["ca.pem", "other-ca.pem", "server.crt", "server.key"] {
                chown_to(&base.join(file), user)?;
            }
        }
        let cluster = TlsCluster {
            port,
            ca_file,
            other_ca_file,
            bin,
            data,
            owner,
            _dir: dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                path(&cluster.data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             fsync = off\n",
            dir = path(base)?,
        );
        append(&cluster.data.join("postgresql.conf"), &conf)?;
        std::fs::write(
            cluster.data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        let log = base.join("postgres.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                path(&cluster.data)?,
                "-l",
                path(&log)?,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    /// `postgres://postgres@HOST:port/postgres?query`.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(program);
        let mut command = match &self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .output()
            .with_context(|| format!("{} does not run", program.display()))?;
        if !output.status.success() {
            bail!(
                "{} {args:?} failed: {}{}",
                program.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        if let Ok(data) = path(&self.data) {
            let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "stop"]);
        }
    }
}

/// A self-signed CA and its key.
fn new_ca(name: &str) -> anyhow::Result<(rcgen::Certificate, rcgen::KeyPair)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
}

/// The directory of `initdb` and `pg_ctl`: `COINSLOT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else `pg_config --bindir`.
pub fn postgres_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("COINSLOT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("no PostgreSQL binaries: install postgresql or set COINSLOT_PG_BIN")?;
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn chown_to(file: &Path, user: &str) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(file)
        .status()?;
    anyhow::ensure!(status.success(), "chown {user} {}", file.display());
    Ok(())
}

fn set_mode(file: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn append(file: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}
