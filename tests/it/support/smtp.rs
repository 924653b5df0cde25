//! A real SMTP server for the mail tests: `mailin-embedded` (its own SMTP state machine and
//! parser) on a loopback port, keeping what it receives. It can refuse every recipient, as a
//! server that does not relay for us does.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server};

/// One mail as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body).
    pub data: Vec<u8>,
}

#[derive(Clone)]
struct Keep {
    mails: Arc<Mutex<Vec<Received>>>,
    refuse: Arc<AtomicBool>,
    current: Option<Received>,
}

impl Handler for Keep {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.refuse.load(Ordering::SeqCst) {
            Response::custom(550, "5.7.1 relay denied".into())
        } else {
            mailin_embedded::response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Received {
            to: to.to_vec(),
            data: Vec::new(),
        });
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(m) = self.current.take() {
            self.mails.lock().unwrap().push(m);
        }
        mailin_embedded::response::OK
    }
}

/// The server, serving on a thread for the rest of the test process.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mails: Arc<Mutex<Vec<Received>>>,
    refuse: Arc<AtomicBool>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(AtomicBool::new(false));
        let handler = Keep {
            mails: mails.clone(),
            refuse: refuse.clone(),
            current: None,
        };
        let mut server = Server::new(handler);
        server
            .with_name("smtp.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer {
            port,
            mails,
            refuse,
        }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Refuse every recipient (550) from now on, or not.
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// What it received so far.
    pub fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }
}

/// A loopback URL nothing listens on: a mail server that is down.
pub fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("smtp://127.0.0.1:{port}")
}
