//! Real mail servers for the email tests: Dovecot (IMAP) and Postfix (SMTP)
//! from Debian's packages, started per test in a temporary directory on free
//! loopback ports, Postfix delivering into the Maildirs that Dovecot serves.
//!
//! Users (password `secret`): support, sam, kim (agents), boss (manager),
//! ana, bob (customers), all `@example.test`. Ports: IMAP plain/STARTTLS and
//! IMAPS; SMTP plain without AUTH (outside senders), plain with AUTH,
//! submission (STARTTLS + AUTH) and SMTPS.
//! When the binaries are missing, [`MailServers::start`] prints a visible skip
//! and returns `None` — and panics when `CI=true`, where nothing may be skipped.
//! `.ci/run` installs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concierge::channels::email::settings::{AddressPattern, EmailSettings, Secret, Tls};
use concierge::config::SecretSource;

use crate::helpers::FAST_SLA;

pub const USERS: [&str; 6] = ["support", "sam", "kim", "boss", "ana", "bob"];
pub const DOMAIN: &str = "example.test";
pub const PASSWORD: &str = "secret";
/// The name our receiving server writes in `Authentication-Results`
/// (`email.authserv_id` in the tests' configurations).
pub const AUTHSERV_ID: &str = "mx.example.test";

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    /// Plain, no AUTH: outside senders (works while Dovecot is down).
    pub smtp: u16,
    /// Plain with AUTH (needs Dovecot's auth socket): `tls = "none"` clients.
    pub smtp_auth: u16,
    pub submission: u16,
    pub smtps: u16,
}

pub struct MailServers {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    dovecot: Option<Child>,
    postfix: Option<Child>,
}

use crate::helpers::free_port;

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl MailServers {
    /// Starts Dovecot and Postfix, or returns `None` with a visible skip.
    pub fn start() -> Option<MailServers> {
        let missing: Vec<&str> =
            ["/usr/sbin/dovecot", "/usr/sbin/postfix"].into_iter().filter(|p| !Path::new(p).exists()).collect();
        if !missing.is_empty() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{missing:?} missing, but CI=true: install dovecot-imapd and postfix (.ci/run does)");
            }
            crate::helpers::skipped(
                "mail servers",
                "dovecot and postfix are not installed; apt-get install dovecot-imapd postfix",
            );
            return None;
        }
        let dir = tempfile::Builder::new().prefix("concierge-mail.").tempdir().unwrap();
        let d = dir.path().to_path_buf();
        // Delivery runs as uid 65534: every parent must be traversable.
        run(Command::new("chmod").arg("755").arg(&d));
        let ports = Ports {
            imap: free_port(),
            imaps: free_port(),
            smtp: free_port(),
            smtp_auth: free_port(),
            submission: free_port(),
            smtps: free_port(),
        };
        let mut passwd = String::new();
        let mut vmailbox = String::new();
        for user in USERS {
            std::fs::create_dir_all(d.join("vmail").join(user)).unwrap();
            passwd.push_str(&format!(
                "{user}:{{PLAIN}}{PASSWORD}:65534:65534::{}::\n",
                d.join("vmail").join(user).display()
            ));
            vmailbox.push_str(&format!("{user}@{DOMAIN} {user}/Maildir/\n"));
        }
        run(Command::new("chown").args(["-R", "65534:65534"]).arg(d.join("vmail")));
        std::fs::write(d.join("passwd"), passwd).unwrap();
        std::fs::write(d.join("vmailbox"), vmailbox).unwrap();
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2", "-keyout"])
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .stderr(Stdio::null()));
        std::fs::write(d.join("dovecot.conf"), dovecot_conf(&d, ports)).unwrap();
        let pf = d.join("pf");
        std::fs::create_dir_all(&pf).unwrap();
        std::fs::write(pf.join("main.cf"), postfix_main(&d)).unwrap();
        // As a border server must (RFC 8601 §5): mail from outside never
        // keeps an Authentication-Results header claiming our server's name.
        std::fs::write(
            d.join("header_checks"),
            format!(
                "/^Authentication-Results:[[:space:]]*{}([[:space:];]|$)/ IGNORE\n",
                AUTHSERV_ID.replace('.', "\\.")
            ),
        )
        .unwrap();
        std::fs::write(pf.join("master.cf"), postfix_master(ports)).unwrap();
        std::fs::create_dir_all(d.join("pfq")).unwrap();
        std::fs::create_dir_all(d.join("pfdata")).unwrap();
        run(Command::new("chown").args(["postfix:postfix"]).arg(d.join("pfdata")));
        let mut servers = MailServers { dir, ports, dovecot: None, postfix: None };
        servers.start_imap();
        servers.start_smtp();
        Some(servers)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn start_imap(&mut self) {
        let d = self.path();
        let log = std::fs::File::create(d.join("dovecot.out")).unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dovecot");
        self.dovecot = Some(child);
        wait_for_port(self.ports.imap, "dovecot", &d.join("dovecot.log"));
    }

    /// Stops Dovecot and ends its sessions too (here its session processes
    /// outlive the master; a real outage cuts them).
    pub fn stop_imap(&mut self) {
        if let Some(mut child) = self.dovecot.take() {
            let out = Command::new("pgrep").arg("-P").arg(child.id().to_string()).output();
            let sessions = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
            for pid in sessions.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
            }
            wait_closed(self.ports.imap);
        }
    }

    pub fn start_smtp(&mut self) {
        let d = self.path();
        run(Command::new("postfix").arg("-c").arg(d.join("pf")).arg("check"));
        let log = std::fs::File::create(d.join("postfix.out")).unwrap();
        let child = Command::new("postfix")
            .arg("-c")
            .arg(d.join("pf"))
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postfix");
        self.postfix = Some(child);
        wait_for_port(self.ports.smtp, "postfix", &d.join("postfix.log"));
    }

    pub fn stop_smtp(&mut self) {
        if let Some(mut child) = self.postfix.take() {
            let _ =
                Command::new("postfix").arg("-c").arg(self.path().join("pf")).arg("stop").stdin(Stdio::null()).output();
            let _ = child.wait();
            wait_closed(self.ports.smtp);
        }
    }

    /// Email settings for the support mailbox on these servers: the IMAP and
    /// SMTP ports that go with `tls`, trusting the harness certificate.
    pub fn settings(&self, tls: Tls, password: &str) -> EmailSettings {
        let p = self.ports;
        let (imap_port, smtp_port) = match tls {
            Tls::None => (p.imap, p.smtp_auth),
            Tls::StartTls => (p.imap, p.submission),
            Tls::Implicit => (p.imaps, p.smtps),
        };
        EmailSettings {
            imap_host: "localhost".into(),
            imap_port,
            smtp_host: "localhost".into(),
            smtp_port,
            username: "support".into(),
            password_source: SecretSource::Env {
                key: "email.password_env".into(),
                var: "CONCIERGE_TEST_SUPPORT_PASSWORD".into(),
            },
            password: Secret(password.into()),
            smtp_auth: true,
            address: "support@example.test".into(),
            tls,
            tls_ca_file: Some(self.cert()),
            mailboxes: vec!["INBOX".into()],
            sent_mailbox: None,
            agents: vec![
                AddressPattern::parse("sam@example.test").unwrap(),
                AddressPattern::parse("kim@example.test").unwrap(),
            ],
            managers: vec!["boss@example.test".into()],
            resolve_after_silence: None,
            poll_interval: 60,
            authserv_ids: vec![AUTHSERV_ID.into()],
            agent_reply_tags: true,
            copy_to_support: true,
        }
    }

    /// An environment holding `password` where [`MailServers::settings`] looks for it.
    pub fn env(password: &str) -> std::collections::HashMap<String, String> {
        [("CONCIERGE_TEST_SUPPORT_PASSWORD".to_string(), password.to_string())].into()
    }

    /// The CA certificate clients must trust for the TLS ports.
    pub fn cert(&self) -> PathBuf {
        self.path().join("cert.pem")
    }

    /// The raw messages delivered to `user`'s INBOX so far, oldest first.
    pub fn delivered(&self, user: &str) -> Vec<String> {
        self.mail_of(user, false).into_iter().map(|(_, m)| m).collect()
    }

    /// The messages in `user`'s INBOX and every folder, each with the
    /// instant it landed in the mailbox (its file's modification time:
    /// written once by the server, kept by Dovecot's renames), oldest first.
    #[allow(dead_code)] // benches/latency.rs
    pub fn delivered_at(&self, user: &str) -> Vec<(std::time::SystemTime, String)> {
        self.mail_of(user, true)
    }

    fn mail_of(&self, user: &str, folders: bool) -> Vec<(std::time::SystemTime, String)> {
        let maildir = self.path().join("vmail").join(user).join("Maildir");
        let mut dirs = vec![maildir.clone()];
        if folders {
            let subs = std::fs::read_dir(&maildir).into_iter().flatten().flatten().map(|e| e.path());
            dirs.extend(subs.filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))));
        }
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = dirs
            .iter()
            .flat_map(|f| ["new", "cur"].map(|sub| f.join(sub)))
            .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(at, p)| (at, String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()))
            .collect()
    }

    /// Waits up to 10 s until `user` has received a message for which `pred`
    /// holds; returns it.
    pub fn wait_for(&self, user: &str, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = self.delivered(user).into_iter().find(|m| pred(m)) {
                return m;
            }
            assert!(Instant::now() < until, "no matching message for {user}; mailbox: {:#?}", self.delivered(user));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Delivers `raw` to `user` as the receiving server does after checking
    /// the sender's DKIM signature and DMARC (OpenDKIM/OpenDMARC, rspamd):
    /// with its `Authentication-Results` verdict on top. Postfix here has no
    /// such filter, so the verdict is written by the test.
    pub fn deliver_verified(&self, user: &str, name: &str, verdict: &str, raw: &str) {
        let raw = format!("Authentication-Results: {AUTHSERV_ID}; {verdict}\r\n{raw}");
        self.drop_raw(user, name, raw.as_bytes());
    }

    /// Puts raw bytes straight into `user`'s Maildir (as a broken client or a
    /// damaged store could), bypassing Postfix, which would repair headers.
    pub fn drop_raw(&self, user: &str, name: &str, raw: &[u8]) {
        self.drop_raw_in(user, "", name, raw);
    }

    /// Like [`MailServers::drop_raw`], into a folder ("" for INBOX, "Sent"...).
    pub fn drop_raw_in(&self, user: &str, folder: &str, name: &str, raw: &[u8]) {
        let mut maildir = self.path().join("vmail").join(user).join("Maildir");
        if !folder.is_empty() {
            maildir = maildir.join(format!(".{folder}"));
        }
        for sub in ["cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let new = maildir.join("new");
        std::fs::create_dir_all(&new).unwrap();
        // Delivered as a mail server does: written in tmp/, then renamed into
        // new/. Only the directories and this file change owner (a recursive
        // chown would race with Dovecot moving other mail from new/ to cur/).
        let user_dir = self.path().join("vmail").join(user);
        let staged = maildir.join("tmp").join(format!("1700000000.{name}.test"));
        std::fs::write(&staged, raw).unwrap();
        let mut owned = vec![user_dir.clone(), user_dir.join("Maildir")];
        owned.extend([maildir.clone(), maildir.join("cur"), maildir.join("tmp"), new.clone(), staged.clone()]);
        run(Command::new("chown").arg("65534:65534").args(&owned));
        std::fs::rename(&staged, new.join(format!("1700000000.{name}.test"))).unwrap();
    }

    /// Sends a raw message over plain SMTP (no auth), as an outside sender
    /// would: a connection that fails before the message data is accepted is
    /// retried (a just-started Postfix can reset the first connections).
    pub fn send(&self, from: &str, to: &str, raw: &str) {
        for attempt in 1.. {
            match self.try_send(from, to, raw) {
                Ok(()) => return,
                Err(e) if attempt < 10 => {
                    eprintln!("SMTP send attempt {attempt} failed before DATA ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => panic!("cannot send to {to}: {e}"),
            }
        }
    }

    /// Errors only before the message data is sent; after that it panics.
    fn try_send(&self, from: &str, to: &str, raw: &str) -> std::io::Result<()> {
        let stream = TcpStream::connect(("127.0.0.1", self.ports.smtp))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut w = stream;
        let expect = |code: &str, reader: &mut BufReader<TcpStream>| -> std::io::Result<()> {
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if !line.starts_with(code) {
                    return Err(std::io::Error::other(format!("expected {code}, got {line:?}")));
                }
                if line.as_bytes().get(3) == Some(&b' ') {
                    return Ok(());
                }
            }
        };
        expect("220", &mut reader)?;
        for (cmd, code) in [
            ("EHLO test.example\r\n".to_string(), "250"),
            (format!("MAIL FROM:<{from}>\r\n"), "250"),
            (format!("RCPT TO:<{to}>\r\n"), "250"),
            ("DATA\r\n".to_string(), "354"),
        ] {
            w.write_all(cmd.as_bytes())?;
            expect(code, &mut reader)?;
        }
        let body = raw.replace("\r\n", "\n").replace('\n', "\r\n").replace("\r\n.", "\r\n..");
        w.write_all(body.as_bytes()).unwrap();
        w.write_all(b"\r\n.\r\n").unwrap();
        expect("250", &mut reader).unwrap();
        let _ = w.write_all(b"QUIT\r\n");
        Ok(())
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        self.stop_smtp();
        self.stop_imap();
    }
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_closed(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dovecot_conf(d: &Path, p: Ports) -> String {
    let d = d.display();
    format!(
        "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\nprotocols = imap\nlisten = 127.0.0.1\n\
         ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\ndisable_plaintext_auth = no\n\
         auth_mechanisms = plain login\nmail_location = maildir:~/Maildir\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%n {d}/passwd\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = username_format=%n {d}/passwd\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {}\n  }}\n\
         inet_listener imaps {{\n    address = 127.0.0.1\n    port = {}\n  }}\n}}\n\
         service auth {{\n  unix_listener auth-postfix {{\n    mode = 0660\n    user = postfix\n    group = postfix\n  }}\n}}\n",
        p.imap, p.imaps
    )
}

fn postfix_main(d: &Path) -> String {
    let d = d.display();
    format!(
        "compatibility_level = 3.6\nqueue_directory = {d}/pfq\ndata_directory = {d}/pfdata\n\
         maillog_file_prefixes = {d}\nmaillog_file = {d}/postfix.log\nmyhostname = mail.example.test\n\
         mydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
         alias_maps =\nalias_database =\nvirtual_mailbox_domains = example.test\n\
         virtual_mailbox_base = {d}/vmail\nvirtual_mailbox_maps = texthash:{d}/vmailbox\n\
         virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n\
         smtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\nsmtpd_tls_security_level = may\n\
         smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {d}/run/auth-postfix\n\
         smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated reject_unauth_destination\n\
         default_transport = error:outbound mail disabled in tests\nrelay_transport = error:outbound mail disabled in tests\n\
         recipient_delimiter = +\nheader_checks = regexp:{d}/header_checks\n"
    )
}

/// Debian's master.cf services with chroot off, and our loopback listeners.
fn postfix_master(p: Ports) -> String {
    let stock = std::fs::read_to_string("/etc/postfix/master.cf").unwrap_or_default();
    let mut out = format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         127.0.0.1:{} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes\n\
         127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes\n\
         127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes\n",
        p.smtp, p.smtp_auth, p.submission, p.smtps
    );
    for line in stock.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || line.starts_with(char::is_whitespace) || fields.len() < 8 {
            continue;
        }
        // Skip the stock network listeners and services needing extra set-up.
        if fields[1] == "inet"
            || ["maildrop", "uucp", "ifmail", "bsmtp", "scalemail-backend", "mailman", "postlog"].contains(&fields[0])
        {
            continue;
        }
        let mut f: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        f[4] = "n".into();
        out.push_str(&f.join(" "));
        out.push('\n');
    }
    out.push_str("postlog unix-dgram n - n - 1 postlogd\n");
    out
}

/// Logs in over plain IMAP and returns the number of messages in INBOX.
pub fn imap_count(port: u16, user: &str) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("a1 LOGIN {user} {PASSWORD}\r\na2 SELECT INBOX\r\na3 LOGOUT\r\n").as_bytes()).unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.contains("a1 OK"), "login failed: {all}");
    all.lines()
        .find_map(|l| l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn the_harness_delivers_smtp_mail_into_a_mailbox_that_imap_serves_and_survives_restarts() {
    let Some(mut servers) = MailServers::start() else { return };
    let raw = "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: harness\r\n\r\nHello.\r\n";
    servers.send("ana@example.test", "support@example.test", raw);
    servers.wait_for("support", |m| m.contains("Subject: harness"));
    assert_eq!(imap_count(servers.ports.imap, "support"), 1);
    servers.stop_imap();
    assert!(TcpStream::connect(("127.0.0.1", servers.ports.imap)).is_err());
    servers.stop_smtp();
    servers.start_smtp();
    servers.start_imap();
    servers.send("bob@example.test", "support@example.test", &raw.replace("harness", "again"));
    servers.wait_for("support", |m| m.contains("Subject: again"));
    assert_eq!(imap_count(servers.ports.imap, "support"), 2);
}

/// Whether a TLS handshake on `port` verifies against `cert` (`starttls`:
/// e.g. "smtp" to upgrade a plain connection first).
fn tls_verifies(port: u16, cert: &Path, starttls: Option<&str>) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-verify_return_error", "-CAfile"]).arg(cert);
    if let Some(proto) = starttls {
        cmd.args(["-starttls", proto]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("Verify return code: 0 (ok)")
}

#[test]
fn the_harness_offers_tls_that_verifies_against_its_certificate() {
    let Some(servers) = MailServers::start() else { return };
    let cert = servers.cert();
    assert!(tls_verifies(servers.ports.imaps, &cert, None), "IMAPS");
    assert!(tls_verifies(servers.ports.imap, &cert, Some("imap")), "IMAP STARTTLS");
    assert!(tls_verifies(servers.ports.smtps, &cert, None), "SMTPS");
    assert!(tls_verifies(servers.ports.submission, &cert, Some("smtp")), "submission STARTTLS");
}

/// A `concierge` configuration for these servers: the support mailbox over
/// plain IMAP and SMTP, agents sam and kim, manager boss, [`FAST_SLA`], the
/// database at `db_url`.
pub fn config(servers: &MailServers, db_url: &str) -> String {
    let p = servers.ports;
    format!(
        r#"
[database]
url = "{db_url}"
{FAST_SLA}[email]
imap_host = "127.0.0.1"
imap_port = {}
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "none"
username = "support"
password_env = "CONCIERGE_TEST_SUPPORT_PASSWORD"
address = "support@example.test"
agents = ["sam@example.test", "kim@example.test"]
managers = ["boss@example.test"]
poll_interval = "1s"
authserv_id = "{AUTHSERV_ID}"
"#,
        p.imap, p.smtp_auth
    )
}

/// [`config`] with an 8-hour first-response target (acknowledgements and
/// announcements only, no nudges) and `extra` sections, written to a file in
/// `dir`; returns its path.
pub fn slow_config_file(servers: &MailServers, db_url: &str, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("concierge.toml");
    let text = config(servers, db_url).replace("first_response = \"6s\"", "first_response = \"8h\"") + extra;
    std::fs::write(&path, text).unwrap();
    path
}
