//! A mail server on loopback that keeps what it receives, for the `make
//! send` round trip: `b4 send` delivers the series to it as it would to a
//! real relay.
//!
//! The SMTP dialogue is the `mailin` crate's; this module only carries
//! lines between it and the socket, and stores each message.

use anyhow::{Context, Result};
use mailin::{response, Action, Handler, Response, SessionBuilder};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One message as the server received it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub rcpt: Vec<String>,
    /// The message, dot-unstuffed, with the line ends it was sent with.
    pub data: Vec<u8>,
}

/// The handler of one SMTP session: collects the message being received
/// and hands it to the server's store when the client ends it.
#[derive(Clone)]
struct Collector {
    current: Received,
    store: Arc<Mutex<Vec<Received>>>,
}

impl Handler for Collector {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.current = Received { from: from.to_string(), ..Received::default() };
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.current.rcpt.push(to.to_string());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let msg = std::mem::take(&mut self.current);
        match self.store.lock() {
            Ok(mut v) => {
                v.push(msg);
                response::OK
            }
            Err(_) => response::INTERNAL_ERROR,
        }
    }
}

/// A server listening on 127.0.0.1 on a free port, in a thread of its own.
///
/// Messages are stored before the server acknowledges them, so once a
/// client has seen every message accepted, [`Server::received`] has them
/// all. The thread ends with the process.
pub struct Server {
    addr: SocketAddr,
    store: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    /// Starts listening.
    pub fn start() -> Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot listen on a loopback port for the SMTP server")?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Vec::new()));
        let handler = Collector { current: Received::default(), store: Arc::clone(&store) };
        thread::Builder::new().name("smtp".into()).spawn(move || {
            for stream in listener.incoming().flatten() {
                // One client at a time is all the round trip needs; a
                // session that fails loses only its own message, which the
                // caller then finds missing.
                let _ = session(stream, handler.clone());
            }
        })?;
        Ok(Self { addr, store })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages received so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.store.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Runs one SMTP session on `stream` until the client quits.
fn session(stream: TcpStream, handler: Collector) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let peer = stream.peer_addr()?.ip();
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut session = SessionBuilder::new("lab.localhost").build(peer, handler);
    session.greeting().write_to(&mut out)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let res = session.process(&line);
        match res.action {
            Action::NoReply => {}
            Action::Reply => res.write_to(&mut out)?,
            // STARTTLS is not offered; a client that asks anyway is not one
            // the round trip uses: end the session rather than go on in
            // plain text after agreeing to TLS.
            Action::Close | Action::UpgradeTls => {
                res.write_to(&mut out)?;
                return Ok(());
            }
        }
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one SMTP reply (its last line has a space after the code).
    fn reply(r: &mut impl BufRead, transcript: &mut String) {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            transcript.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] == b' ' {
                return;
            }
        }
    }

    /// Speaks SMTP to the server by hand, the way a client would.
    fn send(port: u16, lines: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut transcript = String::new();
        reply(&mut r, &mut transcript);
        let mut in_data = false;
        for l in lines {
            s.write_all(format!("{l}\r\n").as_bytes()).unwrap();
            // Lines inside DATA get no reply, until the final dot.
            if !in_data || *l == "." {
                reply(&mut r, &mut transcript);
            }
            in_data = (in_data && *l != ".") || *l == "DATA";
        }
        transcript
    }

    #[test]
    fn a_message_is_kept_with_its_envelope_and_dots_unstuffed() {
        let server = Server::start().unwrap();
        let t = send(
            server.port(),
            &[
                "EHLO client",
                "MAIL FROM:<a@example.org>",
                "RCPT TO:<b@example.org>",
                "RCPT TO:<c@example.org>",
                "DATA",
                "Subject: x",
                "",
                "..leading dot",
                ".",
                "QUIT",
            ],
        );
        assert!(t.contains("\r\n354 "), "{t}");
        assert!(t.ends_with("221 Goodbye\r\n"), "{t}");
        let got = server.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, "a@example.org");
        assert_eq!(got[0].rcpt, ["b@example.org", "c@example.org"]);
        assert_eq!(got[0].data, b"Subject: x\r\n\r\n.leading dot\r\n");
    }
}
